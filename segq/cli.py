"""The one argument parser every script shares, with PaddleSeg's flag names.

A script asks for the flag groups it needs; common flags that touch the config
(``--iters``, ``--batch_size``, ``--learning_rate``) become ``--opts`` overrides, so the
config written to the run directory is what actually ran.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

GROUPS = ("train", "eval", "export", "predict", "deploy", "ptq", "analysis")


def build_parser(description: str, groups: tuple[str, ...],
                 config: bool = True) -> argparse.ArgumentParser:
    """The parser of one script: the common flags (``config=False``: only ``--verbose``, for
    scripts that read no single config) plus the flag ``groups`` it asks for."""
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown flag groups {sorted(unknown)}; choose from {GROUPS}")
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    if config:
        p.add_argument("--config", required=True, help="YAML config file")
        p.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE",
                       help="config overrides, e.g. train_dataset.dataset_root=/data/camvid")
        p.add_argument("--num_workers", type=int, default=0,
                       help="data-loading worker processes")
        p.add_argument("--seed", type=int, default=0, help="random seed")
        p.add_argument("--model_path", default=None,
                       help="weights to start from (train) or to evaluate/export/predict")
    p.add_argument("--verbose", action="store_true",
                   help="show Paddle's and PaddleSlim's own logging (glog lines, oneDNN pass "
                        "reports, their warnings and progress bars); off by default")
    if "train" in groups:
        g = p.add_argument_group("training")
        g.add_argument("--save_dir", default="output")
        g.add_argument("--iters", type=int, default=None)
        g.add_argument("--batch_size", type=int, default=None)
        g.add_argument("--learning_rate", type=float, default=None)
        g.add_argument("--do_eval", action="store_true", help="evaluate at every save_interval")
        g.add_argument("--save_interval", type=int, default=1000)
        g.add_argument("--keep_checkpoint_max", type=int, default=5)
        g.add_argument("--log_iters", type=int, default=10)
        g.add_argument("--use_vdl", action="store_true", help="log scalars to VisualDL")
        g.add_argument("--resume_model", default=None, help="checkpoint dir to resume from")
        g.add_argument("--overwrite", action="store_true",
                       help="replace the run already in --save_dir (a new run refuses a "
                            "non-empty --save_dir otherwise)")
    if "eval" in groups:
        g = p.add_argument_group("evaluation")
        g.add_argument("--result_json", default=None, help="write the metrics here as JSON")
        g.add_argument("--aug_eval", action="store_true")
        g.add_argument("--scales", type=float, nargs="+", default=None)
        g.add_argument("--flip_horizontal", action="store_true")
        g.add_argument("--flip_vertical", action="store_true")
        g.add_argument("--is_slide", action="store_true")
        g.add_argument("--crop_size", type=int, nargs=2, default=None, metavar=("W", "H"))
        g.add_argument("--stride", type=int, nargs=2, default=None, metavar=("W", "H"))
    if "export" in groups:
        g = p.add_argument_group("export")
        if "train" not in groups:
            g.add_argument("--save_dir", default="output/inference_model")
        g.add_argument("--input_shape", type=int, nargs=4, default=None,
                       metavar=("N", "C", "H", "W"), help="fixed input shape (default dynamic)")
        g.add_argument("--with_softmax", action="store_true")
        g.add_argument("--without_argmax", action="store_true")
        g.add_argument("--argmax_before_resize", nargs="?", type=float, const=True,
                       default=False, metavar="SCALE",
                       help="arg max at the logits' resolution (or, given SCALE, at that "
                            "fraction of the input size, e.g. 0.5), then a nearest resize of "
                            "the label map: faster, slightly less accurate at class boundaries")
    if "deploy" in groups:
        g = p.add_argument_group("deployed model")
        g.add_argument("--model_dir", required=True, help="directory written by export.py")
        g.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
        g.add_argument("--cpu_threads", type=int, default=2)
        if "eval" not in groups:
            g.add_argument("--result_json", default=None, help="write the metrics here as JSON")
    if "ptq" in groups:
        _add_ptq_flags(p.add_argument_group("post-training quantization"))
    if "analysis" in groups:
        g = p.add_argument_group("quantization analysis")
        g.add_argument("--fp32_model", default=None,
                       help="the FP32 weights the quantized model came from")
        g.add_argument("--model_dir", default=None,
                       help="the INT8 model as an export (PTQ or QAT), instead of --model_path "
                            "(a QAT checkpoint)")
        g.add_argument("--cpu_threads", type=int, default=2,
                       help="threads of the Paddle Inference runs")
    if "predict" in groups:
        g = p.add_argument_group("prediction")
        g.add_argument("--image_path", required=True, help="an image or a directory of images")
        if "train" not in groups and "export" not in groups:
            g.add_argument("--save_dir", default="output/result")
    return p


def _add_ptq_flags(g) -> None:
    g.add_argument("--save_dir", default="output/ptq")
    g.add_argument("--calib_dir", default=None,
                   help="folder of calibration images (searched recursively) or of .npy "
                        "tensors in the model's input layout; default: the train split")
    g.add_argument("--calib_list", default=None,
                   help="a PaddleSeg list file of calibration images (first column)")
    g.add_argument("--calib_num", type=int, default=256, help="calibration images to use")
    g.add_argument("--batch_size", type=int, default=8, help="calibration batch size")
    g.add_argument("--algo", default="KL",
                   help="activation scales: abs_max, avg, hist, mse, KL, or all (one "
                        "sub-directory each)")
    g.add_argument("--hist_percent", type=float, default=0.9999,
                   help="the percentile 'hist' keeps")
    g.add_argument("--bias_correction", action="store_true",
                   help="correct the output shift that weight rounding causes")
    g.add_argument("--recon", choices=("layer", "region"), default=None,
                   help="learned weight rounding (does not run on the pinned versions)")
    g.add_argument("--weight_only", action="store_true",
                   help="store INT8 weights, run in float (smaller files, same speed)")
    g.add_argument("--weight_bits", type=int, default=8)
    g.add_argument("--input_shape", type=int, nargs=4, default=None,
                   metavar=("N", "C", "H", "W"), help="fixed input shape (default dynamic)")
    g.add_argument("--allow_calib_overlap", action="store_true",
                   help="allow calibration images that are also in the val set")
    g.add_argument("--with_softmax", action="store_true")
    g.add_argument("--without_argmax", action="store_true")


def ptq_options(args: argparse.Namespace):
    """The ``ptq`` flag group -> :class:`segq.quant.ptq.PTQOptions`."""
    from .deploy.export import ExportOptions
    from .quant.calibration import CalibrationSource
    from .quant.ptq import PTQOptions

    return PTQOptions(
        save_dir=args.save_dir, algo=args.algo, hist_percent=args.hist_percent,
        bias_correction=args.bias_correction, recon=args.recon, weight_only=args.weight_only,
        weight_bits=args.weight_bits, batch_size=args.batch_size,
        export=ExportOptions(input_shape=args.input_shape, with_softmax=args.with_softmax,
                             without_argmax=args.without_argmax),
        source=CalibrationSource(args.calib_dir, args.calib_list, args.calib_num,
                                 args.allow_calib_overlap))


def export_options(args: argparse.Namespace):
    """The ``export`` flag group -> :class:`segq.deploy.export.ExportOptions`."""
    from .deploy.export import ExportOptions

    return ExportOptions(input_shape=args.input_shape, with_softmax=args.with_softmax,
                         without_argmax=args.without_argmax,
                         argmax_before_resize=args.argmax_before_resize)


def config_opts(args: argparse.Namespace) -> list[str]:
    """``--opts`` plus the config-changing flags, as overrides (flags win)."""
    opts = list(args.opts)
    for flag, key in (("iters", "iters"), ("batch_size", "batch_size"),
                      ("learning_rate", "lr_scheduler.learning_rate")):
        value = getattr(args, flag, None)
        if value is not None:
            opts.append(f"{key}={value}")
    test_flags = {"aug_eval": "aug_eval", "flip_horizontal": "flip_horizontal",
                  "flip_vertical": "flip_vertical", "is_slide": "is_slide"}
    for flag, key in test_flags.items():
        if getattr(args, flag, False):
            opts.append(f"test_config.{key}=true")
    for flag in ("scales", "crop_size", "stride"):
        value = getattr(args, flag, None)
        if value is not None:
            opts.append(f"test_config.{flag}={list(value)}")
    return opts


def train_options(args: argparse.Namespace):
    """The ``train`` flag group -> :class:`segq.engine.workflows.TrainOptions`."""
    from .engine.workflows import TrainOptions

    return TrainOptions(
        save_dir=args.save_dir, model_path=args.model_path, resume_model=args.resume_model,
        do_eval=args.do_eval, save_interval=args.save_interval,
        keep_checkpoint_max=args.keep_checkpoint_max, log_iters=args.log_iters,
        num_workers=args.num_workers, use_vdl=args.use_vdl, seed=args.seed,
        overwrite=args.overwrite)


def setup_logging(verbose: bool | None = None) -> None:
    """segq's progress lines to stdout; Paddle's own logging off unless ``verbose`` (default:
    ``--verbose`` on the command line or SEGQ_VERBOSE=1; see :mod:`segq.cpu_runtime`)."""
    from .cpu_runtime import set_verbose

    set_verbose(verbose)
    # segq's own handler: paddle and visualdl configure the root logger on import, which
    # would make basicConfig a no-op and send progress lines to stderr.
    log = logging.getLogger("segq")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                               "%Y-%m-%d %H:%M:%S"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def set_default_threads() -> None:
    """Thread count and MKL dispatch defaults; call before paddle is imported."""
    from .cpu_runtime import set_cpu_defaults

    set_cpu_defaults()


def _rank_tag() -> str:
    """`` (rank R of N)`` in a job of ``paddle.distributed.launch``, so the failing rank's
    line names it among the workerlogs; empty in a single process."""
    world = int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1)
    return f" (rank {os.environ.get('PADDLE_TRAINER_ID', '?')} of {world})" if world > 1 else ""


def _quiet_sigterm_in_a_launched_job() -> None:
    """When every rank fails the same way, ``paddle.distributed.launch`` SIGTERMs the ranks
    still exiting as soon as the first one has; Paddle's own handler would then append a
    "C++ Traceback" to a workerlog that already holds the one-line error. The default
    action ends the process quietly."""
    if _rank_tag():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)``; turn segq's input errors (bad data included: ``DataError`` is a
    ``ValueError``) into one clear line and exit code 2, and Ctrl-C into one line and 130."""
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .cpu_runtime import verbose_requested
    from .data.download import DownloadError
    from .data.workers import WorkerDiedError
    from .registry import RegistryError

    setup_logging(verbose_requested(argv) if argv is not None else None)
    try:
        main(argv)
    except (ConfigError, CheckpointError, RegistryError, FileNotFoundError, ValueError,
            DownloadError, WorkerDiedError) as e:
        print(f"error{_rank_tag()}: {e}", file=sys.stderr)
        _quiet_sigterm_in_a_launched_job()
        return 2
    except KeyboardInterrupt as e:
        # a second Ctrl-C while this is printed would end in a traceback after all
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # the trainer's TrainingInterrupted says where it stopped and how to resume
        print(str(e) or "interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, what a shell reports for a Ctrl-C'd command
    return 0
