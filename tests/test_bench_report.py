"""Tests for segq.bench.report: run JSON files, Markdown/CSV/JSON tables, PNG plot."""
import csv
import io
import json
from dataclasses import asdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segq.bench import report as br

BenchRow = br.BenchRow
ONEDNN, ORT, OV = "Paddle Inference oneDNN", "ONNX Runtime", "OpenVINO"

ROWS_A = [
    BenchRow("BiSeNetV2", ONEDNN, "fp32", "FP32", 0.712345, 94.0, 99.5, 12.25, 8.98, 1.0),
    BenchRow("BiSeNetV2", ONEDNN, "int8", "QAT (segq)", 0.70871, 50.1, 55.04, 22.0, 2.43, 1.8765),
    BenchRow("BiSeNetV2", ORT, "int8", "PTQ: ORT quantize_static", None, 45.3, 47.0, 25.5, 2.4,
             2.075),
    BenchRow("BiSeNetV2", OV, "int8", "QAT (segq), argmax before resize", 0.7051, 40.14, 42.0,
             None, 2.51, 2.3418),
]
ROWS_B = [
    BenchRow("PP-LiteSeg", ONEDNN, "fp32", "FP32", 0.6801, 60.0, 63.0, 18.0, 32.1, 1.0),
    BenchRow("PP-LiteSeg", ORT, "fp32", "FP32", 0.6801, 58.0, 61.0, None, 32.0, 1.0345),
    BenchRow("PP-LiteSeg", ORT, "int8", "PTQ: ORT quantize_static", 0.6612, 33.33, 35.0, 33.0,
             8.2, 1.8),
    BenchRow("PP-LiteSeg", OV, "int8", "PTQ: NNCF", 0.6650, 35.0, 36.0, 31.0, 8.3, 1.7143),
]
ENV_A = {"cpu": "Intel Xeon @ 2.2GHz", "cores": 2, "threads": 1, "paddle": "3.3.1"}
ENV_B = {"cpu": "AMD EPYC 7B12", "cores": 2, "threads": 2, "onnxruntime": "1.20.0"}
CMD_A = "python tools/bench_deploy.py --model bisenetv2 --threads 1"
CMD_B = "python tools/bench_deploy.py --model pp_liteseg --threads 2"
SET_A = {"input_shape": [1, 3, 512, 1024], "latency_runs": 50, "throughput_batch": 8,
         "val_images": 233}
SET_B = {"input_shape": [1, 3, 512, 1024], "latency_runs": 30, "throughput_batch": 8,
         "val_images": 233}


@pytest.fixture
def run_files(tmp_path):
    a = tmp_path / "runs" / "nested" / "bisenetv2.json"
    b = tmp_path / "runs" / "pp_liteseg.json"
    br.write_model_rows(ROWS_A, a, ENV_A, CMD_A, SET_A)
    br.write_model_rows(ROWS_B, b, ENV_B, CMD_B, SET_B)
    return [a, b]


@pytest.fixture
def results(run_files, tmp_path):
    runs = br.load_runs(run_files)
    return runs, br.write_results(runs, tmp_path / "out")


def _as_json(row):
    return json.loads(json.dumps(asdict(row)))  # tuples come back as lists


def _table_lines(md):
    return [ln for ln in md.splitlines() if ln.startswith("| ") and "---" not in ln]


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def test_write_model_rows_is_atomic_and_complete(run_files):
    for f in run_files:
        assert f.is_file()
        assert not [p for p in f.parent.iterdir() if p.name.endswith(".tmp")]
    doc = json.loads(run_files[0].read_text())
    assert doc["command"] == CMD_A and doc["environment"] == ENV_A and doc["settings"] == SET_A
    assert doc["rows"] == [_as_json(r) for r in ROWS_A]


def test_load_runs_round_trip(run_files):
    runs = br.load_runs(run_files)
    assert [r["command"] for r in runs] == [CMD_A, CMD_B]
    assert runs[1]["environment"] == ENV_B
    assert runs[0]["rows"] == [_as_json(r) for r in ROWS_A]


def test_files_exist(results):
    _, paths = results
    assert set(paths) == {"md", "csv", "json", "png"}
    for kind, p in paths.items():
        assert p.is_file() and p.name == f"results.{kind}"
        assert not [q for q in p.parent.iterdir() if q.name.endswith(".tmp")]


def test_csv(results):
    _, paths = results
    with open(paths["csv"], newline="") as f:
        table = list(csv.reader(f))
    header = list(br.BENCH_KEYS) + ["method", "throughput_ips"]
    assert table[0] == header
    body = [dict(zip(header, line)) for line in table[1:]]
    assert len(body) == len(ROWS_A) + len(ROWS_B)
    for got, row in zip(body, ROWS_A + ROWS_B):
        for k in header:
            want = getattr(row, k)
            if isinstance(want, float):
                assert float(got[k]) == want
            elif want is None:
                assert got[k] == ""
            else:
                assert got[k] == want


def test_json(results):
    _, paths = results
    rows = json.loads(paths["json"].read_text())
    assert len(rows) == len(ROWS_A) + len(ROWS_B)
    for got, (row, env) in zip(rows, [(r, ENV_A) for r in ROWS_A] + [(r, ENV_B) for r in ROWS_B]):
        assert set(br.BENCH_KEYS) <= set(got)
        expected = asdict(row) | {"cpu": env["cpu"], "threads": env["threads"]}
        del expected["runs_ms"]  # the flat table keeps the statistics, not the timed runs
        assert got == expected


def test_markdown(results):
    _, paths = results
    md = paths["md"].read_text()
    assert "## BiSeNetV2" in md and "## PP-LiteSeg" in md
    assert f"`{CMD_A}`" in md and f"`{CMD_B}`" in md
    assert "cpu Intel Xeon @ 2.2GHz, cores 2, threads 1, paddle 3.3.1" in md
    assert "latency_runs 50" in md and "val_images 233" in md
    header = ("| front | model | backend | type | method | mIoU | latency ms (median) | p90 ms "
              "| throughput img/s | speed-up | size MB |")
    assert md.count(header) == 2

    lines = _table_lines(md)
    rows = [_cells(ln)[1:] for ln in lines if not ln.startswith("| front |")]
    marks = [_cells(ln)[0].strip("*") for ln in lines if not ln.startswith("| front |")]
    assert len(rows) == len(ROWS_A) + len(ROWS_B)
    # the front: every BiSeNetV2 row with an mIoU; PP-LiteSeg's oneDNN FP32 is beaten by
    # its ORT FP32 (same mIoU, faster); rows without an mIoU are not ranked
    assert marks == [br.PARETO_MARK, br.PARETO_MARK, "", br.PARETO_MARK,
                     "", br.PARETO_MARK, br.PARETO_MARK, br.PARETO_MARK]
    plain = [[c.strip("*") for c in r] for r in rows]
    qat = plain[1]
    assert qat == ["BiSeNetV2", ONEDNN, "INT8", "QAT (segq)", "0.7087", "50.1", "55.0", "22.0",
                   "1.88x", "2.43"]
    assert plain[0][2] == "FP32" and plain[0][8] == "1.00x" and plain[0][9] == "8.98"
    assert plain[2][4] == "-"          # miou None
    assert plain[3][7] == "-"          # throughput None
    assert plain[3][3] == "QAT (segq), argmax before resize"

    # bold: the fastest INT8 row of each model within 0.005 mIoU of its best INT8 row
    bold = [r for r in rows if any(c.startswith("**") for c in r)]
    assert [(r[0], r[1]) for r in bold] == [("**BiSeNetV2**", f"**{OV}**"),
                                            ("**PP-LiteSeg**", f"**{ORT}**")]
    assert all(c.startswith("**") and c.endswith("**") for r in bold for c in r)


def test_highlight_skips_a_fast_row_that_gives_up_accuracy():
    rows = [asdict(r) for r in ROWS_A]
    # the fastest INT8 row now loses 0.0061 against the best INT8 row (QAT, 0.70871)
    rows[3] = rows[3] | {"miou": 0.7026}
    assert br._highlighted(rows) == {1}
    rows[3] = rows[3] | {"miou": 0.7038}  # 0.0049 below: within the tolerance
    assert br._highlighted(rows) == {3}
    # without any INT8 mIoU, the fastest INT8 row
    assert br._highlighted([r | {"miou": None} for r in rows]) == {3}


def test_pareto_front_per_model():
    rows = [asdict(r) for r in ROWS_A + ROWS_B]
    assert br.pareto_front(rows) == {0, 1, 3, 5, 6, 7}
    # a row that is both slower and less accurate than another of its model leaves the front
    worse = rows[1] | {"miou": 0.70, "latency_ms": 60.0}
    assert br.pareto_front([rows[0], worse, rows[3]]) == {0, 2}


def test_a_row_whose_p90_is_far_from_its_median_is_marked_and_explained():
    steady = asdict(ROWS_A[0]) | {"latency_ms": 40.0, "p90_ms": 50.0}      # 1.25x: not marked
    drifted = asdict(ROWS_A[1]) | {"latency_ms": 40.0, "p90_ms": 50.1}
    run = {"command": "c", "environment": {}, "settings": {}}
    md = br.results_markdown([run | {"rows": [steady, drifted]}])
    p90s = [_cells(ln)[7].strip("*") for ln in _table_lines(md)[1:]]
    assert p90s == ["50.0", f"50.1 {br.UNSTEADY_MARK}"]
    assert md.count(br.UNSTEADY_MARK) == 2  # the mark and its footnote
    assert br.UNSTEADY_MARK not in br.results_markdown([run | {"rows": [steady]}])


def test_markdown_escapes_pipe_and_backticks():
    row = asdict(ROWS_A[0]) | {"method": "a|b"}
    md = br.results_markdown([{"command": "echo `x`", "environment": {}, "settings": {},
                               "rows": [row]}])
    assert "a\\|b" in md and "`` echo `x` ``" in md


def test_png(results):
    _, paths = results
    data = paths["png"].read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


def test_plot_has_a_panel_per_model_with_its_front_numbered_and_listed():
    rows = [asdict(r) for r in ROWS_A + ROWS_B]
    fig = br._plot_figure(rows)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["BiSeNetV2", "PP-LiteSeg"]
    front = br.pareto_front(rows)
    for ax, model in zip(axes, ["BiSeNetV2", "PP-LiteSeg"]):
        mine = [rows[i] for i in sorted(front) if rows[i]["model"] == model]
        numbers = sorted(t.get_text() for t in ax.texts if t.get_text().isdigit())
        assert numbers == [str(k) for k in range(1, len(mine) + 1)]
        listing = next(t.get_text() for t in ax.texts if ": " in t.get_text())
        for r in mine:
            assert f"{r['backend']}: {r['method']}" in listing


def test_png_without_any_miou(tmp_path):
    row = asdict(ROWS_A[0]) | {"miou": None}
    paths = br.write_results([{"command": "", "environment": {}, "settings": {}, "rows": [row]}],
                             tmp_path)
    assert paths["png"].read_bytes().startswith(b"\x89PNG")


def test_load_runs_corrupt_json(tmp_path, run_files):
    bad = tmp_path / "broken_run.json"
    bad.write_text('{"rows": [')
    with pytest.raises(ValueError, match="broken_run.json"):
        br.load_runs([run_files[0], bad])


def test_load_runs_missing_rows(tmp_path):
    bad = tmp_path / "no_rows.json"
    bad.write_text('{"command": "x"}')
    with pytest.raises(ValueError, match="no_rows.json.*rows"):
        br.load_runs([bad])


def test_load_runs_row_missing_miou(tmp_path):
    doc = json.loads(json.dumps({"command": "x", "environment": {}, "settings": {},
                                 "rows": [asdict(r) for r in ROWS_B]}))
    del doc["rows"][2]["miou"]
    bad = tmp_path / "lacks_miou.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"lacks_miou\.json.*row 2.*miou"):
        br.load_runs([bad])


_opt_float = st.none() | st.floats(allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(miou=_opt_float, lat=st.floats(allow_nan=False), p90=st.floats(allow_nan=False),
       tput=_opt_float, size=st.floats(allow_nan=False), speed=st.floats(allow_nan=False),
       method=st.text(), model=st.text(min_size=1))
def test_csv_round_trip_property(miou, lat, p90, tput, size, speed, method, model):
    row = BenchRow(model, OV, "int8", method, miou, lat, p90, tput, size, speed)
    text = br.results_csv([{"command": "", "environment": {}, "settings": {}, "rows": [row]}])
    header, line = list(csv.reader(io.StringIO(text, newline="")))
    got = dict(zip(header, line))
    assert got["model"] == model and got["method"] == method
    for k in ("miou", "latency_ms", "p90_ms", "throughput_ips", "size_mb", "speedup"):
        want = getattr(row, k)
        assert (got[k] == "") if want is None else (float(got[k]) == want)


def test_run_file_keeps_the_timed_runs_one_line_each_row(tmp_path):
    runs = (12.5, 13.0, 40.25)
    row = BenchRow("X", ONEDNN, "fp32", "FP32", 0.5, 13.0, 35.0, None, 1.0, 1.0, runs_ms=runs)
    cmd = "python b.py --input_shape [\n 1, 2 ]"  # a string that looks like a list stays as is
    path = tmp_path / "x.json"
    br.write_model_rows([row], path, ENV_A, cmd, {"input_shape": [1, 3, 8, 8]})
    text = path.read_text()
    assert '"runs_ms": [12.5, 13.0, 40.25]' in text and '"input_shape": [1, 3, 8, 8]' in text
    run = br.load_runs([path])[0]
    assert run["command"] == cmd and run["rows"][0]["runs_ms"] == list(runs)
    # the flat table keeps the statistics only
    assert "runs_ms" not in br.results_rows([run])[0]
