"""The PTQ study's Markdown table (segq.bench.ptq_study.study_markdown)."""
from segq.bench.ptq_study import StudyOptions, StudyRow, study_markdown


def _cells(md, name):
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {name} |"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_calibration_time_in_all_and_per_image():
    rows = [StudyRow("FP32", "fp32", 0.5, 60.0, 63.0, 47.3, speedup=1.0),
            StudyRow("PTQ KL", "int8", 0.49, 30.0, 31.0, 12.2, calib_images=64,
                     calib_seconds=454.8, speedup=2.0),
            StudyRow("weight_only", "fp32", 0.5, 60.0, 62.0, 12.0, calib_seconds=0.3,
                     speedup=1.0)]
    md = study_markdown(rows, "t", "python x.py", {"cpu": "c"},
                        StudyOptions(save_dir="s", input_shape=[1, 3, 8, 8]))
    header = _cells(md, "model")
    kl = dict(zip(header, _cells(md, "PTQ KL")))
    assert kl["calib images"] == "64" and kl["calib s"] == "454.8"
    assert kl["s per image"] == "7.11"  # 454.8 / 64
    # no calibration images, no time per image; no calibration at all, no time
    assert dict(zip(header, _cells(md, "weight_only")))["s per image"] == "-"
    assert dict(zip(header, _cells(md, "FP32")))["calib s"] == "-"
