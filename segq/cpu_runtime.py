"""Process-wide CPU settings that must be in the environment before paddle is imported."""
from __future__ import annotations

import os

# Paddle's CPU wheel links Intel MKL (mklml) for GEMM, which dygraph convs and matmuls use.
# This MKL picks its kernels by CPU vendor, not by features: on AMD CPUs it takes a generic
# path although they have AVX2/AVX-512. Measured on a 2-core AMD EPYC (AVX-512): 2048^2
# sgemm 56 -> 155 GFLOP/s, and a DeepLabV3+ R18 training step 6.4 -> 3.4 s, with
# MKL_DEBUG_CPU_TYPE=5 (MKL's own switch to its AVX2 kernels; later MKL releases dropped it,
# where it is then ignored). Intel CPUs keep MKL's default (AVX-512) dispatch.
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
