"""The Markdown record of a finished training run (``tools/report_run.py``): the command,
iterations, batch size, wall time, CPU and thread count the run recorded, and the val mIoU /
accuracy / kappa / per-class IoU of its ``best_model`` measured now by segq's evaluator."""
from __future__ import annotations

import json
import re
from pathlib import Path


def threads_from_log(log: Path | None) -> str | None:
    """The OMP thread count a run's log printed (for runs that did not record it)."""
    if log is None or not log.is_file():
        return None
    m = re.search(r"OMP threads (\S+)", log.read_text(errors="replace"))
    return m.group(1) if m else None


def run_report(config: str, run_dir: str, command: str | None = None, title: str | None = None,
               log: str | None = None, opts: list[str] = ()) -> str:
    from ..checkpoint import iteration_checkpoints
    from ..config import load_config
    from ..cpu_runtime import paddle_threads, run_environment
    from ..engine.workflows import evaluate_checkpoint

    run = Path(run_dir)
    cfg = load_config(run / "config.yml", list(opts))
    checkpoints = iteration_checkpoints(run)
    if not checkpoints or not (run / "best_model/state.json").is_file():
        raise FileNotFoundError(f"{run}: no iter_N checkpoint or best_model (expected a "
                                f"training run directory)")
    state = json.loads((run / "best_model/state.json").read_text())
    last_state = json.loads((checkpoints[-1] / "state.json").read_text())
    # runs record their environment; for older runs fall back to this machine's, said so
    here = run_environment()
    env = last_state.get("extra", {})
    machine_note = "" if "cpu" in env else " (read when reporting, on the machine that trained)"
    result = evaluate_checkpoint(cfg, str(run / "best_model"))
    labels_txt = Path(cfg.val_dataset.kwargs().get("dataset_root", "")) / "labels.txt"
    names = None
    if labels_txt.is_file():
        names = [ln.strip() for ln in labels_txt.read_text().splitlines() if ln.strip()]
    wall = env.get("wall_time_s")
    threads = (env.get("omp_threads") or threads_from_log(Path(log) if log else None) or "?")
    lines = [
        f"## {title or cfg.model.type + ' on ' + cfg.val_dataset.type}",
        "",
        f"- command: `{command or 'python train.py --config ' + config}`",
        f"- config: `{config}`; iterations: {last_state['iteration']} at batch size "
        f"{cfg.batch_size}; best val mIoU at iter {state['iteration']}",
        f"- training wall time: {wall / 60:.1f} min, evaluations included" if wall
        else "- training wall time: n/a",
        f"- machine: {env.get('cpu', here['cpu'])}, {env.get('cores', here['cores'])} cores; "
        f"paddle {env.get('paddle', here['paddle'])}{machine_note}; training "
        f"OMP_NUM_THREADS={threads}",
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
    ]
    return "\n".join(lines)
