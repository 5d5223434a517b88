"""Process-wide settings that must be in place before paddle is imported: CPU threads and
MKL dispatch, and quiet logging (Paddle's own output off unless ``--verbose``)."""
from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import subprocess
import sys
import warnings

# Paddle's CPU wheel links Intel MKL (mklml) for GEMM, which dygraph convs and matmuls use.
# This MKL picks its kernels by CPU vendor, not by features: on AMD CPUs it takes a generic
# path although they have AVX2/AVX-512. MKL_DEBUG_CPU_TYPE=5 is MKL's own switch to its AVX2
# kernels (later MKL releases dropped it, where it is then ignored); it about halves a
# training step on AMD (docs/design-notes.md). Intel CPUs keep MKL's default dispatch.
MKL_AMD_WORKAROUND = {"MKL_DEBUG_CPU_TYPE": "5"}


def cpuinfo_field(name: str, cpuinfo: str = "/proc/cpuinfo") -> str:
    """The first CPU's ``name`` field of /proc/cpuinfo, or "" if there is none."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_vendor(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The ``vendor_id`` of the first CPU ("GenuineIntel", "AuthenticAMD"), or "" if unknown."""
    return cpuinfo_field("vendor_id", cpuinfo)


def set_cpu_defaults(environ=os.environ, vendor: str | None = None) -> None:
    """Defaults for a segq process; a value the user set already is never overridden."""
    # `import paddle` sets OMP_NUM_THREADS=1 unless it is already set; default to the
    # machine's cores so a user who set nothing is not silently single-threaded.
    environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    if (cpu_vendor() if vendor is None else vendor) == "AuthenticAMD":
        for key, value in MKL_AMD_WORKAROUND.items():
            environ.setdefault(key, value)
    if environ is os.environ:  # this process, not an environment being prepared
        set_quiet_defaults()


# ---------------------------------------------------------------- quiet by default
# Paddle talks a lot on its own: glog INFO lines from C++, coloured oneDNN pass reports,
# Python warnings a segq user cannot act on, PaddleSlim's loggers and progress bars. segq
# keeps them off unless the run asks for them with --verbose (or SEGQ_VERBOSE=1).
VERBOSE_FLAG = "--verbose"
VERBOSE_ENV = "SEGQ_VERBOSE"
# Read by glog when paddle's native library loads. 1 drops glog's INFO lines ("I1203 ...
# program_interpreter.cc:257] New Executor is Running."); Paddle's C++ warnings and errors
# stay. A value the user set is kept.
QUIET_ENV = {"GLOG_minloglevel": "1"}
# the QUIET_ENV keys segq set itself, so that a --verbose child of a quiet segq process can
# take them back (a value the user set carries no mark and is left alone)
QUIET_MARK_ENV = "SEGQ_QUIET_ENV"
# Paddle's Python warnings that say nothing to a segq user: (message, category, module),
# the message and module as regular expressions matched at the start
QUIET_WARNINGS = (
    (r"No ccache found", UserWarning, r"paddle\.utils\.cpp_extension"),
    (r"When training, we now always track global mean and variance", UserWarning,
     r"paddle\.nn\.layer\.norm"),
    (r"Setuptools is replacing distutils", UserWarning, r"_distutils_hack"),
    (r"full_graph=False don't support input_spec arguments", UserWarning,
     r"paddle\.jit\.dy2static"),
)
# what `import paddle` prints to sys.stderr whenever OMP_NUM_THREADS > 1
# (paddle/base/__init__.py, __bootstrap__), although more threads are what segq wants
PADDLE_IMPORT_NOISE = ("WARNING: OMP_NUM_THREADS set to ", "PLEASE USE OMP_NUM_THREADS WISELY.")
# lines Paddle's C++ writes straight to stderr, past glog: the oneDNN INT8 passes' reports
# ("---    quantized 51 fused_conv2d ops", "---    squashed 14 dequant with ops", coloured),
# printed whether or not Config.disable_glog_info() was called, and glog INFO lines
NATIVE_NOISE = re.compile(r"^(?:\x1b\[[0-9;]*m)?---\s{2,}\S"
                          r"|^I\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] ")

_verbose_override: bool | None = None


def verbose_requested(argv=None, environ=os.environ) -> bool:
    """True if the command line has ``--verbose`` or the environment ``SEGQ_VERBOSE=1``."""
    argv = sys.argv[1:] if argv is None else argv
    return VERBOSE_FLAG in argv or environ.get(VERBOSE_ENV, "") not in ("", "0")


def set_verbose(verbose: bool | None) -> None:
    """Decide verbosity for this process (``None``: from the command line and environment)."""
    global _verbose_override
    _verbose_override = verbose


def verbose_enabled() -> bool:
    """Whether Paddle's own logging is wanted in this process."""
    return verbose_requested() if _verbose_override is None else _verbose_override


def set_log_env(environ=os.environ, verbose: bool = False) -> None:
    """Quiet: :data:`QUIET_ENV` where the user set nothing. Verbose: undo what a quiet segq
    parent process set (marked in ``SEGQ_QUIET_ENV``); values the user set are kept."""
    if verbose:
        for key in filter(None, environ.pop(QUIET_MARK_ENV, "").split(",")):
            if environ.get(key) == QUIET_ENV.get(key):
                del environ[key]
        return
    marked = set(filter(None, environ.get(QUIET_MARK_ENV, "").split(",")))
    for key, value in QUIET_ENV.items():
        if key not in environ:
            environ[key] = value
            marked.add(key)
    if marked:
        environ[QUIET_MARK_ENV] = ",".join(sorted(marked))


def install_warning_filters() -> None:
    """Ignore :data:`QUIET_WARNINGS` (by message, category and module: nothing else)."""
    for message, category, module in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


class _DropImportNoise:
    """``sys.stderr`` until ``import paddle`` has printed its OMP_NUM_THREADS lines: drops
    those (and the newline ``print`` writes after each), passes everything else straight
    through, and puts the real stream back after the last of them."""

    def __init__(self, stream):
        self._stream = stream
        self._skip_newline = False

    def write(self, text):
        if self._skip_newline and text == "\n":
            self._skip_newline = False
            return len(text)
        self._skip_newline = False
        if text.startswith(PADDLE_IMPORT_NOISE):
            self._skip_newline = True
            if text.startswith(PADDLE_IMPORT_NOISE[-1]) and sys.stderr is self:
                sys.stderr = self._stream
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def set_quiet_defaults(verbose: bool | None = None) -> None:
    """This process's logging defaults; call before paddle is imported. Quiet unless
    ``verbose`` (default: :func:`verbose_requested`)."""
    verbose = verbose_requested() if verbose is None else verbose
    set_log_env(os.environ, verbose)
    if verbose:
        return
    install_warning_filters()
    if "paddle" not in sys.modules and not isinstance(sys.stderr, _DropImportNoise) \
            and sys.stderr is not None:
        sys.stderr = _DropImportNoise(sys.stderr)


def quiet_library_loggers(prefixes: tuple[str, ...], level: int = logging.WARNING) -> None:
    """Raise the loggers already created under ``prefixes`` (e.g. ``"paddleslim."``) to
    ``level``: Paddle's and PaddleSlim's ``get_logger`` set INFO on each module's logger as
    it is imported, so call this after the import."""
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.startswith(prefixes) \
                and logger.level < level:
            logger.setLevel(level)


# The filter process of native_stderr_filtered: stdin is the pipe, stderr the real stderr.
_FILTER_SCRIPT = r"""
import os, re, sys
noise = re.compile(sys.argv[1].encode())
rest = b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    *lines, rest = (rest + chunk).split(b"\n")
    out = b"".join(line + b"\n" for line in lines if not noise.search(line))
    if out:
        os.write(2, out)
if rest and not noise.search(rest):
    os.write(2, rest)
"""


@contextlib.contextmanager
def native_stderr_filtered(noise: re.Pattern = NATIVE_NOISE):
    """Within the block, drop the lines matching ``noise`` that anything in the process,
    C++ included, writes to file descriptor 2; all other lines reach stderr as written.

    For a call whose C++ prints past glog (``paddle.inference.create_predictor`` with oneDNN
    INT8: "---    quantized N fused_conv2d ops" and 30 more lines). Does nothing when
    verbose. The lines go through a small filter process, not a buffer: if the process dies
    inside the block (a segfault in C++), the filter still passes on what was written,
    crash reports included."""
    if verbose_enabled():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no usable stderr: nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen([sys.executable, "-S", "-E", "-c", _FILTER_SCRIPT,
                                  noise.pattern], stdin=read_end, stderr=saved)
    except OSError:
        os.close(read_end), os.close(write_end), os.close(saved)
        yield
        return
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        os.dup2(saved, 2)  # the pipe's last write end in this process closes: EOF
        os.close(saved)
        try:
            child.wait(timeout=10)  # a process forked inside the block may hold the pipe
        except subprocess.TimeoutExpired:
            pass


def paddle_threads() -> str:
    return os.environ.get("OMP_NUM_THREADS", "unset")


def cpu_model() -> str:
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def run_environment() -> dict:
    """What a timing depends on, recorded with every run."""
    import paddle

    env = {"cpu": cpu_model(), "cores": os.cpu_count(), "omp_threads": paddle_threads(),
           "paddle": paddle.__version__}
    if "MKL_DEBUG_CPU_TYPE" in os.environ:  # set on AMD CPUs by set_cpu_defaults
        env["mkl_cpu_type"] = os.environ["MKL_DEBUG_CPU_TYPE"]
    return env
