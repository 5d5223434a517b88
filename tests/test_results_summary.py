"""docs/results.md's summary table is generated from the run files its index lists, and the
PTQ study that writes one of them refuses what it cannot run before any work."""
import json
import subprocess
import sys
import time

import pytest

from segq.bench.results_summary import (BEGIN, END, read_index, replace_summary,
                                        summary_markdown, summary_rows)
from tests.helpers import DEMO, REPO
from tools.results_summary import main


def test_the_repos_results_page_is_up_to_date():
    main(["--page", str(REPO / "docs" / "results.md"), "--check"])


def study_file(tmp_path):
    rows = [{"name": "FP32", "precision": "fp32", "miou": 0.50, "median_ms": 60.0,
             "size_mb": 30.0},
            {"name": "PTQ KL", "precision": "int8", "miou": 0.49, "median_ms": 30.0,
             "size_mb": 8.0},
            {"name": "PTQ mse", "precision": "int8", "miou": 0.495, "median_ms": 31.0,
             "size_mb": 8.0},
            {"name": "weight_only", "precision": "fp32", "miou": 0.499, "median_ms": 61.0,
             "size_mb": 8.0},
            {"name": "QAT", "precision": "int8", "miou": 0.51, "median_ms": 29.0,
             "size_mb": 8.0}]
    path = tmp_path / "study.json"
    path.write_text(json.dumps({"environment": {"cpu": "Test CPU"}, "rows": rows}))
    return path


def test_a_ptq_study_gives_its_most_accurate_ptq_row_and_its_qat_row(tmp_path):
    rows = summary_rows([(study_file(tmp_path), "Net")])
    assert [(r["int8"], r["int8_miou"], r["int8_ms"]) for r in rows] == [
        ("best PTQ (mse)", 0.495, 31.0), ("QAT", 0.51, 29.0)]
    table = summary_markdown(rows)
    assert "| Net | best PTQ (mse) | 0.5000 | 0.4950 | -0.0050 | 60.0 | 31.0 | 1.94x |" in table


def test_the_table_replaces_only_the_text_between_the_markers():
    page = f"# R\n\nintro\n\n{BEGIN}\nold\n{END}\n\nafter\n"
    assert replace_summary(page, "new") == f"# R\n\nintro\n\n{BEGIN}\nnew\n{END}\n\nafter\n"
    with pytest.raises(ValueError, match="summary markers"):
        replace_summary("# R\n", "new")


def test_a_bad_index_is_named(tmp_path):
    index = tmp_path / "index.yml"
    index.write_text("- file: a.json\n")
    with pytest.raises(ValueError, match="index.yml"):
        read_index(index)
    index.write_text("- {file: missing.json, label: X}\n")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        summary_rows(read_index(index))


def test_the_ptq_study_names_an_unknown_algorithm_before_any_work(tmp_path):
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "tools/ptq_study.py", "--config", str(DEMO),
                        "--model_path", "unused.pdparams", "--input_shape", "1", "3", "48", "64",
                        "--save_dir", str(tmp_path / "study"), "--algos", "KL", "kl2"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: --algos: expected one or more of abs_max, avg, hist, mse, KL, got ['KL', 'kl2']"]
    assert not (tmp_path / "study").exists() and time.perf_counter() - t0 < 60
