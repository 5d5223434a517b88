"""The deployment benchmark end to end on a tiny model: every backend and the peer PTQ rows,
measured in one run, written as run JSON plus the results tables."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segq.bench.report import BENCH_KEYS
from segq.config import QuantConfig, load_config
from segq.deploy.export import ExportOptions
from segq.deploy.workflows import export_model
from segq.quant.qat import export_qat_model
from tests.helpers import DEMO
from tests.zoo import calibrated_qat, trained_like

REPO = Path(__file__).resolve().parents[1]
SHAPE = [-1, 3, 96, 128]  # the demo dataset's image size
SMALL = ["train_dataset.num_samples=4", "val_dataset.num_samples=4"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    cfg = load_config(DEMO)
    out = tmp_path_factory.mktemp("bench")
    model = trained_like("BiSeNetV2", 4)
    fp32 = [export_model(cfg, model, out / "fp32", ExportOptions(input_shape=SHAPE)),
            export_model(cfg, model, out / "fp32_fast",
                         ExportOptions(input_shape=SHAPE, argmax_before_resize=True))]
    qat = calibrated_qat("BiSeNetV2", QuantConfig(), num_classes=4)
    int8 = export_qat_model(cfg, qat, out / "int8", ExportOptions(input_shape=SHAPE))
    fast = export_qat_model(cfg, qat, out / "int8_fast",
                            ExportOptions(input_shape=SHAPE, argmax_before_resize=True))
    return out, fp32, [int8, fast]


def bench(out, fp32, int8, *extra):
    cmd = [sys.executable, "deploy/python/benchmark.py", "--config", str(REPO / DEMO),
           "--fp32_dir", *map(str, fp32), "--int8_dir", *map(str, int8),
           "--save_dir", str(out / "work"),
           "--out_dir", str(out / "tables"), "--cpu_threads", "1", "--latency_runs", "3",
           "--throughput_batch", "2", "--calib_images", "2", "--opts", *SMALL, *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_benchmark_measures_every_backend_and_the_peers_in_one_run(exports):
    out, fp32, int8 = exports
    r = bench(out, fp32, int8, "--name", "tiny", "--latency_rounds", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads((out / "tables/runs/tiny.json").read_text())
    assert run["settings"]["latency_rounds"] == 2
    rows = run["rows"]
    fast = ", argmax before resize"
    exports = [("fp32", "FP32"), ("fp32", "FP32" + fast), ("int8", "QAT (segq)"),
               ("int8", "QAT (segq)" + fast)]
    assert [(x["backend"], x["precision"], x["method"]) for x in rows] == [
        *[("Paddle Inference oneDNN", *e) for e in exports],
        *[("ONNX Runtime", *e) for e in exports],
        ("ONNX Runtime", "int8", "PTQ: ORT quantize_static"),
        # ORT's default quantizes the logits before the arg max: the same PTQ without that
        ("ONNX Runtime", "int8", "PTQ: ORT quantize_static, float logits"),
        *[("OpenVINO", *e) for e in exports],
        ("OpenVINO", "int8", "PTQ: NNCF")]
    base = rows[0]["latency_ms"]
    for row in rows:
        assert set(BENCH_KEYS) <= set(row) and row["model"] == "BiSeNetV2"
        assert 0.0 <= row["miou"] <= 1.0 and row["throughput_ips"] > 0
        assert row["speedup"] == pytest.approx(base / row["latency_ms"])
        # the run file keeps the timed runs behind each median and p90
        assert len(row["runs_ms"]) == 3 and min(row["runs_ms"]) > 0
        assert row["latency_ms"] == pytest.approx(sorted(row["runs_ms"])[1], abs=0.006)
    fp32_rows = [x for x in rows if x["method"] == "FP32"]
    # the same FP32 model under three runtimes scores the same
    assert max(x["miou"] for x in fp32_rows) - min(x["miou"] for x in fp32_rows) < 0.01
    for row in rows:
        if row["method"].startswith("QAT (segq)"):
            same_runtime_fp32 = next(x for x in fp32_rows if x["backend"] == row["backend"])
            assert row["size_mb"] <= 0.3 * same_runtime_fp32["size_mb"]
    assert run["environment"]["threads"] == 1 and "openvino" in run["environment"]
    assert run["command"].startswith("python deploy/python/benchmark.py --config")
    for name in ("results.md", "results.csv", "results.json", "results.png"):
        assert (out / "tables" / name).is_file()
    md = (out / "tables/results.md").read_text()
    # one table line per row; the fastest INT8 one is in bold
    assert md.count("| BiSeNetV2 |") + md.count("| **BiSeNetV2** |") == len(rows)
    assert md.count("| **BiSeNetV2** |") == 1 and "PTQ: NNCF" in md


def test_argmax_ties_of_the_peer_ptq(exports):
    out, fp32, int8 = exports
    peer = next((out / "work").rglob("ort_ptq.onnx"), None)
    if peer is None:  # the benchmark test above did not run (e.g. -k selected this one)
        assert bench(out, fp32[:1], int8[:1], "--name", "ties").returncode == 0
        peer = next((out / "work").rglob("ort_ptq.onnx"))
    cmd = [sys.executable, "tools/argmax_ties.py", "--config", str(REPO / DEMO), "--onnx",
           str(peer), "--cpu_threads", "1", "--out", str(out / "ties.md"), "--opts", *SMALL]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    row = next(line for line in (out / "ties.md").read_text().splitlines()
               if line.startswith(f"| {peer} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1].endswith("%") and 0.0 <= float(cells[1][:-1]) <= 100.0
    assert all(0.0 <= float(c) <= 1.0 for c in cells[2:5])
    # an export whose logits stay float has no ties to study: one clear line, no traceback
    cmd[cmd.index("--onnx") + 1] = str(int8[0] / "model.onnx")
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode != 0 and "reads float scores" in r.stderr
    assert "Traceback" not in r.stderr


def test_latency_only_skips_the_miou(exports):
    out, fp32, int8 = exports
    r = bench(out, fp32[:1], int8[:1], "--name", "speed", "--no_peers", "--latency_only")
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads((out / "tables/runs/speed.json").read_text())
    assert len(run["rows"]) == 6 and run["settings"]["evaluate"] is False
    assert all(x["miou"] is None and x["latency_ms"] > 0 for x in run["rows"])


def test_benchmark_rejects_exports_it_cannot_compare(exports, tmp_path):
    out, fp32, int8 = exports
    r = bench(out, int8[:1], fp32[:1], "--name", "swapped", "--no_peers")
    assert r.returncode == 2 and "expected FP32 exports, then INT8 exports" in r.stderr
    cfg = load_config(DEMO)
    dynamic = export_model(cfg, trained_like("BiSeNetV2", 4), tmp_path / "dyn")
    r = bench(out, [dynamic], int8[:1], "--name", "dynamic", "--no_peers")
    assert r.returncode == 2 and "--input_shape -1 3 H W" in r.stderr


def test_a_users_run_does_not_land_in_the_published_tables_by_default():
    """Without --out_dir the run JSON and the tables regenerated from every run go under
    output/, never into docs/benchmark (the project's published results)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_cli",
                                                  REPO / "deploy/python/benchmark.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    args = cli.parse_args(["--config", DEMO, "--fp32_dir", "a", "--int8_dir", "b",
                           "--name", "n"])
    assert Path(args.out_dir).parts[0] == "output"
    script = (REPO / "scripts/benchmark_camvid.sh").read_text()
    assert "--out_dir docs/benchmark" in script  # the published runs say so explicitly


@pytest.mark.parametrize("flag", ["--latency_runs", "--latency_rounds", "--cpu_threads"])
def test_a_count_below_one_fails_in_one_line_naming_the_flag(flag, tmp_path):
    r = subprocess.run([sys.executable, "deploy/python/benchmark.py", "--config", str(REPO / DEMO),
                        "--fp32_dir", str(tmp_path), "--int8_dir", str(tmp_path), "--name", "x",
                        "--out_dir", str(tmp_path / "tables"), flag, "0"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{flag} must be >= 1, got 0" in r.stderr.strip().splitlines()[-1]
