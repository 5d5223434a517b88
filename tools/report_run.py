"""Write a Markdown record of a finished training run, re-evaluating its best model:
python tools/report_run.py --config C --run_dir D [--log D.log] [--command "..."] [--out F]

Prints (or appends to ``--out``) the command, iterations, batch size, wall time, CPU and
thread count of the run, and the val mIoU / accuracy / kappa / per-class IoU measured now by
segq's own evaluator on ``D/best_model``.
"""
import argparse
import json
import re
from pathlib import Path

from segq.cli import set_default_threads

set_default_threads()


def threads_from_log(log: Path | None) -> str | None:
    if log is None or not log.is_file():
        return None
    m = re.search(r"OMP threads (\S+)", log.read_text(errors="replace"))
    return m.group(1) if m else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True)
    p.add_argument("--run_dir", required=True)
    p.add_argument("--log", default=None, help="the run's log (for runs without recorded threads)")
    p.add_argument("--command", default=None, help="the command that produced the run")
    p.add_argument("--title", default=None)
    p.add_argument("--out", default=None, help="append the section to this file")
    p.add_argument("--opts", nargs="+", default=[])
    args = p.parse_args(argv)
    from segq.checkpoint import iteration_checkpoints
    from segq.config import load_config
    from segq.engine.workflows import evaluate_checkpoint, paddle_threads, run_environment

    run = Path(args.run_dir)
    cfg = load_config(run / "config.yml", args.opts)
    state = json.loads((run / "best_model/state.json").read_text())
    checkpoints = iteration_checkpoints(run)
    if not checkpoints:
        raise SystemExit(f"{run}: no iter_N checkpoint (expected a training run directory)")
    last = checkpoints[-1]
    last_state = json.loads((last / "state.json").read_text())
    # runs record their environment; for older runs fall back to this machine's, said so
    here = run_environment()
    env = last_state.get("extra", {})
    machine_note = "" if "cpu" in env else " (read when reporting, on the machine that trained)"
    result = evaluate_checkpoint(cfg, str(run / "best_model"))
    dataset_cfg = cfg.val_dataset.kwargs()
    names = None
    labels_txt = Path(dataset_cfg.get("dataset_root", "")) / "labels.txt"
    if labels_txt.is_file():
        names = [ln.strip() for ln in labels_txt.read_text().splitlines() if ln.strip()]
    wall = env.get("wall_time_s")
    lines = [
        f"## {args.title or cfg.model.type + ' on ' + cfg.val_dataset.type}",
        "",
        f"- command: `{args.command or 'python train.py --config ' + args.config}`",
        f"- config: `{args.config}`; iterations: {last_state['iteration']} at batch size "
        f"{cfg.batch_size}; best val mIoU at iter {state['iteration']}",
        f"- training wall time: {wall / 60:.1f} min, evaluations included"
        if wall else "- training wall time: n/a",
        f"- machine: {env.get('cpu', here['cpu'])}, {env.get('cores', here['cores'])} cores; "
        f"paddle {env.get('paddle', here['paddle'])}{machine_note}; training "
        f"OMP_NUM_THREADS={env.get('omp_threads') or threads_from_log(Path(args.log) if args.log else None) or '?'}",
        f"- re-evaluated by `tools/report_run.py` (OMP_NUM_THREADS={paddle_threads()}) on "
        f"{result.num_images} val images, full resolution, single scale:",
        "",
        "| mIoU | pixel acc | kappa |",
        "|---|---|---|",
        f"| {result.miou:.4f} | {result.acc:.4f} | {result.kappa:.4f} |",
        "",
        "| " + " | ".join(names or [str(i) for i in range(len(result.class_iou))]) + " |",
        "|" + "---|" * len(result.class_iou),
        "| " + " | ".join("n/a" if v != v else f"{v:.3f}" for v in result.class_iou) + " |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
