"""Result tables of the deployment benchmark: FP32 vs INT8 across inference backends.

Each benchmarked network is saved as one JSON run (``write_model_rows``: command,
environment, settings and its ``BenchRow``s); ``load_runs`` reads runs back and
``write_results`` turns them into ``results.md`` (PaddleSeg-style tables), ``results.csv``,
``results.json`` and ``results.png`` (mIoU against latency).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

BENCH_KEYS = ("model", "backend", "precision", "miou", "latency_ms", "p90_ms", "size_mb", "speedup")
# the flat tables carry the BENCH_KEYS first so they line up with every run's required keys
CSV_KEYS = BENCH_KEYS + ("method", "throughput_ips")

MD_COLUMNS = ("front", "model", "backend", "type", "method", "mIoU", "latency ms (median)",
              "p90 ms", "throughput img/s", "speed-up", "size MB")

# fixed shapes for the known backends keep the plot legend stable from run to run
_BACKEND_MARKERS = {"Paddle Inference oneDNN": "o", "ONNX Runtime": "s", "OpenVINO": "^"}
_SPARE_MARKERS = ("D", "v", "P", "X", "*", "<", ">", "h")


@dataclass(frozen=True)
class BenchRow:
    model: str            # network name, e.g. "BiSeNetV2"
    backend: str          # "Paddle Inference oneDNN" | "ONNX Runtime" | "OpenVINO"
    precision: str        # "fp32" | "int8"
    method: str           # how the model was made, free text ("FP32", "QAT (segq)", ...)
    miou: float | None    # through the deployed model on the val split; None if not evaluated
    latency_ms: float     # median at batch 1
    p90_ms: float
    throughput_ips: float | None   # images/s at a larger batch, None if not measured
    size_mb: float        # model file(s) on disk, MiB
    speedup: float        # Paddle Inference oneDNN FP32 latency of the model / this latency
    # every timed batch-1 run in the order taken (rounds of blocks, engines in turn): kept in
    # the run file so a p90 far from the median can be traced to the runs behind it
    runs_ms: tuple[float, ...] = ()


# ---------------------------------------------------------------- writing / reading runs

def _atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and os.replace,
    so a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would survive the rename
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _row_dict(row: BenchRow | Mapping[str, Any]) -> dict[str, Any]:
    d = asdict(row) if isinstance(row, BenchRow) else dict(row)
    # older or hand-written rows may omit the two optional columns
    d.setdefault("method", "")
    d.setdefault("throughput_ips", None)
    return d


def write_model_rows(rows: Iterable[BenchRow | Mapping[str, Any]], path: str | os.PathLike,
                     environment: dict, command: str, settings: dict) -> None:
    """Save one network's benchmark run as JSON ``{command, environment, settings, rows}``."""
    out_rows = []
    for i, row in enumerate(rows):
        d = _row_dict(row)
        missing = [k for k in BENCH_KEYS if k not in d]
        if missing:
            raise ValueError(f"row {i} for {path} lacks {missing}")
        out_rows.append(d)
    doc = {"command": command, "environment": dict(environment), "settings": dict(settings),
           "rows": out_rows}
    # default=str: environment/settings may hold Paths or version objects
    _atomic_write(path, _numbers_inline(json.dumps(doc, indent=2, default=str)) + "\n")


# raw newlines only occur between JSON tokens, never inside strings: a string is left alone
_NUMBER_LIST = re.compile(r"\[\n\s*(-?[\d.eE+-]+(?:,\n\s*-?[\d.eE+-]+)*)\n\s*\]")


def _numbers_inline(text: str) -> str:
    """Put each list of plain numbers of indented JSON on one line (a row's timed runs would
    take 50 lines each)."""
    return _NUMBER_LIST.sub(lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", text)


def load_runs(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """Read runs written by ``write_model_rows``; ValueError naming the file if one is bad."""
    runs = []
    for p in paths:
        p = Path(p)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{p}: not a valid JSON benchmark run ({e})") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
            raise ValueError(f"{p}: benchmark run lacks a 'rows' list")
        rows = []
        for i, row in enumerate(doc["rows"]):
            if not isinstance(row, dict):
                raise ValueError(f"{p}: row {i} is not an object")
            missing = [k for k in BENCH_KEYS if k not in row]
            if missing:
                raise ValueError(f"{p}: row {i} lacks key(s) {missing}")
            rows.append(_row_dict(row))
        runs.append({"command": doc.get("command", ""),
                     "environment": dict(doc.get("environment") or {}),
                     "settings": dict(doc.get("settings") or {}),
                     "rows": rows})
    return runs


# ---------------------------------------------------------------- formatting

def _fmt(value: float | None, digits: int, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _md_cell(text: Any) -> str:
    # a '|' in free text (method, cpu name) would split the Markdown cell
    return str(text).replace("|", "\\|").replace("\n", " ")


def _pairs(d: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"


def _code(text: str) -> str:
    # a command holding a backtick needs a longer fence to stay one code span
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _models(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(r["model"]) for r in rows))


# the highlighted INT8 row may give up at most this much mIoU against the model's best INT8
HIGHLIGHT_MIOU_TOLERANCE = 0.005
PARETO_MARK = "◆"
# a p90 beyond this factor of the median marks a row timed while the machine changed speed
UNSTEADY_P90 = 1.25
UNSTEADY_MARK = "†"


def _measured(r: Mapping[str, Any]) -> bool:
    return (r["miou"] is not None and r["latency_ms"] is not None
            and math.isfinite(r["miou"]) and math.isfinite(r["latency_ms"]))


def _highlighted(rows: Sequence[Mapping[str, Any]]) -> set[int]:
    """Per model, the fastest INT8 row within HIGHLIGHT_MIOU_TOLERANCE of the model's best
    INT8 mIoU (first one on a tie): the speed a user gets without giving up accuracy. A
    model whose INT8 rows have no mIoU gets its fastest INT8 row."""
    best: dict[str, int] = {}
    int8 = [i for i, r in enumerate(rows)
            if str(r["precision"]).lower() == "int8" and r["latency_ms"] is not None]
    for model in _models([rows[i] for i in int8]):
        mine = [i for i in int8 if rows[i]["model"] == model]
        scored = [i for i in mine if _measured(rows[i])]
        if scored:
            top = max(rows[i]["miou"] for i in scored)
            mine = [i for i in scored if rows[i]["miou"] >= top - HIGHLIGHT_MIOU_TOLERANCE]
        best[model] = min(mine, key=lambda i: rows[i]["latency_ms"])
    return set(best.values())


def pareto_front(rows: Sequence[Mapping[str, Any]]) -> set[int]:
    """Indices of the rows no other row of the same model beats on both mIoU and latency
    (at least as good on both, better on one); rows without an mIoU are not ranked."""
    pts = [i for i, r in enumerate(rows) if _measured(r)]

    def beats(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        return (a["model"] == b["model"] and a["miou"] >= b["miou"]
                and a["latency_ms"] <= b["latency_ms"]
                and (a["miou"] > b["miou"] or a["latency_ms"] < b["latency_ms"]))

    return {i for i in pts if not any(beats(rows[j], rows[i]) for j in pts if j != i)}


def unsteady(r: Mapping[str, Any]) -> bool:
    """p90 above UNSTEADY_P90 x the median: the machine's speed changed during the run."""
    return (r.get("p90_ms") is not None and r.get("latency_ms") is not None
            and r["p90_ms"] > UNSTEADY_P90 * r["latency_ms"])


def _md_row(r: Mapping[str, Any], bold: bool, front: bool) -> str:
    p90 = _fmt(r["p90_ms"], 1) + (f" {UNSTEADY_MARK}" if unsteady(r) else "")
    cells = [PARETO_MARK if front else "", r["model"], r["backend"], str(r["precision"]).upper(),
             r["method"], _fmt(r["miou"], 4), _fmt(r["latency_ms"], 1), p90,
             _fmt(r.get("throughput_ips"), 1), _fmt(r["speedup"], 2, "x"), _fmt(r["size_mb"], 2)]
    cells = [_md_cell(c) for c in cells]
    if bold:
        cells = [f"**{c}**" if c else c for c in cells]
    return "| " + " | ".join(cells) + " |"


def results_markdown(runs: Sequence[Mapping[str, Any]]) -> str:
    """One Markdown section per run: heading, table, environment/settings line, command."""
    lines = ["# Deployment benchmark: FP32 vs INT8", "",
             "Latency at batch 1 (median and p90); speed-up against the model's "
             "Paddle Inference oneDNN FP32 row of the same run. Bold: the fastest INT8 row "
             f"within {HIGHLIGHT_MIOU_TOLERANCE} mIoU of the model's best INT8 row; "
             f"{PARETO_MARK}: on the model's mIoU/latency Pareto front (no row of it is both "
             "faster and more accurate).", ""]
    for run in runs:
        rows = [_row_dict(r) for r in run["rows"]]
        lines += [f"## {', '.join(_models(rows)) or 'unnamed run'}", "",
                  "| " + " | ".join(MD_COLUMNS) + " |",
                  "|" + "|".join(["---"] * 5 + ["---:"] * (len(MD_COLUMNS) - 5)) + "|"]
        bold, front = _highlighted(rows), pareto_front(rows)
        lines += [_md_row(r, i in bold, i in front) for i, r in enumerate(rows)]
        if any(unsteady(r) for r in rows):
            lines += ["", f"{UNSTEADY_MARK} p90 above {UNSTEADY_P90}x the median: the speed "
                          "of the machine changed during this row's timed runs (a shared virtual "
                          "machine); the rows timed in the same rounds saw the same change."]
        lines += ["", f"Environment: {_pairs(run.get('environment') or {})}. "
                      f"Settings: {_pairs(run.get('settings') or {})}.", "",
                  f"Command: {_code(str(run.get('command', '')))}", ""]
    return "\n".join(lines)


def results_rows(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """All rows of all runs, flat, each with its run's cpu and threads (for results.json)."""
    out = []
    for run in runs:
        env = run.get("environment") or {}
        settings = run.get("settings") or {}
        for r in run["rows"]:
            d = _row_dict(r)
            d.pop("runs_ms", None)  # the flat table keeps the statistics, the run file the runs
            d["cpu"] = env.get("cpu")
            # threads is an environment fact in most runs, a setting in some
            d["threads"] = env.get("threads", settings.get("threads"))
            out.append(d)
    return out


def results_csv(runs: Sequence[Mapping[str, Any]]) -> str:
    """CSV text: header CSV_KEYS, one line per row; None is an empty cell."""
    buf = io.StringIO()
    # the default "\r\n" terminator: csv then quotes any field holding "\r" or "\n", which a
    # "\n" terminator would leave bare, splitting the row on reading
    w = csv.writer(buf)
    w.writerow(CSV_KEYS)
    for run in runs:
        for r in run["rows"]:
            d = _row_dict(r)
            # repr of a float round-trips exactly through float()
            w.writerow(["" if d[k] is None else repr(d[k]) if isinstance(d[k], float) else d[k]
                        for k in CSV_KEYS])
    return buf.getvalue()


# ---------------------------------------------------------------- plot

def _plot_figure(rows: Sequence[Mapping[str, Any]]):
    """mIoU against latency, one panel per model (the models' points sit at different
    latencies and mIoUs; in one panel their labels collided). The Pareto front of each
    model is joined and numbered, and the numbers are listed beside the panel: labels
    written beside crowded points overlapped."""
    # the object API with an explicit Agg canvas leaves pyplot's global backend and figure
    # registry alone, so this works headless and inside other matplotlib programs
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    pts = [r for r in rows if _measured(r)]
    front = [pts[i] for i in sorted(pareto_front(pts), key=lambda i: pts[i]["latency_ms"])]
    models = _models(pts)
    backends = list(dict.fromkeys(str(r["backend"]) for r in pts))
    spare = iter(_SPARE_MARKERS * 4)
    markers = {b: _BACKEND_MARKERS.get(b) or next(spare, "o") for b in backends}

    panels = max(1, len(models))
    fig = Figure(figsize=(13, 1.5 + 3.5 * panels), dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(panels, 1, k + 1) for k in range(panels)]
    for ax, model in zip(axes, models):
        for r in (r for r in pts if r["model"] == model):
            int8 = str(r["precision"]).lower() == "int8"
            ax.scatter([r["latency_ms"]], [r["miou"]], s=50,
                       marker=markers[str(r["backend"])],
                       facecolors="C0" if int8 else "none", edgecolors="C0", linewidths=1.5)
        line = [r for r in front if r["model"] == model]
        ax.plot([r["latency_ms"] for r in line], [r["miou"] for r in line], ls="--", lw=0.8,
                color="C1")
        for k, r in enumerate(line, 1):
            ax.annotate(str(k), (r["latency_ms"], r["miou"]), xytext=(4, 4),
                        textcoords="offset points", fontsize=8, color="C1")
        # beside the panel, not in it: inside, the list hid points
        ax.text(1.02, 0.5, "\n".join(f"{k}: {r['backend']}: {r['method']}"
                                     for k, r in enumerate(line, 1)),
                transform=ax.transAxes, ha="left", va="center", fontsize=7)
        ax.set_title(str(model), fontsize=10)
        ax.set_ylabel("mIoU (val)")
        ax.grid(True, alpha=0.3)
    if not pts:
        axes[0].text(0.5, 0.5, "no row with an evaluated mIoU", ha="center", va="center",
                     transform=axes[0].transAxes)
    else:
        handles = [Line2D([], [], ls="", marker=markers[b], color="C0", label=b)
                   for b in backends]
        handles += [Line2D([], [], ls="", marker="o", markerfacecolor="none",
                           markeredgecolor="C0", color="C0", label="FP32 (hollow)"),
                    Line2D([], [], ls="", marker="o", color="C0", label="INT8 (filled)"),
                    Line2D([], [], ls="--", color="C1", label="Pareto front (numbered)")]
        axes[0].legend(handles=handles, fontsize=7, loc="best")
    axes[-1].set_xlabel("latency ms (median, batch 1)")
    fig.suptitle("Deployment benchmark: mIoU vs latency, FP32 vs INT8")
    fig.tight_layout()
    return fig


def _plot_png(rows: Sequence[Mapping[str, Any]]) -> bytes:
    fig = _plot_figure(rows)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    fig.clear()  # release the artists now rather than at garbage collection
    return buf.getvalue()


def write_results(runs: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write results.md/.csv/.json/.png into ``out_dir`` (atomically); return paths by kind."""
    out = Path(out_dir)
    flat = results_rows(runs)
    return {
        "md": _atomic_write(out / "results.md", results_markdown(runs)),
        "csv": _atomic_write(out / "results.csv", results_csv(runs)),
        "json": _atomic_write(out / "results.json",
                              json.dumps(flat, indent=2, default=str) + "\n"),
        "png": _atomic_write(out / "results.png", _plot_png(flat)),
    }
