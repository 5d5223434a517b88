"""Quantization analysis (segq.quant.analysis, slim/quant_report.py, slim/quant_fallback.py):
the per-layer report of PTQ and QAT models, the program variants the fallback verifies, the
fallback search recovering a layer made to quantize badly, and Ctrl-C keeping the best set."""
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

from segq.builders import build_model_for, build_qat_model
from segq.config import load_config
from segq.data.loader import build_eval_loader
from segq.deploy.export import ExportOptions
from segq.deploy.paddle_inference import PaddleInferenceModel
from segq.deploy.workflows import export_model
from segq.quant.analysis import fallback as fb
from segq.quant.analysis.layer_names import fp32_model_and_val_set
from segq.quant.analysis.program import ExportedProgram
from segq.quant.analysis.report import quant_report
from segq.quant.calibration import CalibrationSource
from segq.quant.exported_ops import weight_ops
from segq.quant.ptq import PTQOptions, ptq
from segq.quant.qat import observe_activation_ranges
from segq.quant.select import select_skipped
from tests.helpers import DEMO, REPO, SMALL, cosine, small_cfg

SHAPE = [-1, 3, 48, 64]
SKIP = "head.conv_1x1"


def cfg_with(extra=()):
    return small_cfg(30, extra)


@pytest.fixture(scope="module")
def ptq_export(fp32_run, tmp_path_factory) -> Path:
    """abs_max PTQ of the trained demo model with ``SKIP`` kept in float."""
    out = tmp_path_factory.mktemp("ptq") / "abs_max"
    ptq(cfg_with([f"quant={{skip_layers: [{SKIP}]}}"]), str(fp32_run), PTQOptions(
        save_dir=str(out), algo="abs_max", batch_size=4, export=ExportOptions(input_shape=SHAPE),
        source=CalibrationSource(calib_num=8)))
    return out


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_report_of_a_ptq_export_names_every_layer_and_a_float_layer_is_exact(
        fp32_run, ptq_export, tmp_path):
    cfg = cfg_with()
    r = quant_report(cfg, str(fp32_run), str(tmp_path / "report"), model_dir=str(ptq_export),
                     num_images=3, profile=["onnxruntime"])
    out = tmp_path / "report"
    assert sorted(p.name for p in out.iterdir()) == [
        "cosine.png", "layers.csv", "quant_params.csv", "report.md", "samples.csv",
        "speed.csv"]
    # the ONNX Runtime profile: integer convs in the INT8 run, float ones in the FP32 run,
    # from a copy of the user's export (which is left without an ONNX file)
    speed = {row["op"]: row for row in read_csv(out / "speed.csv")}
    assert {row["runtime"] for row in speed.values()} == {"onnxruntime"}
    assert float(speed["QLinearConv"]["int8_ms"]) > 0
    assert float(speed["QLinearConv"]["fp32_ms"]) == 0
    assert speed["QuantizeLinear"]["conversion"] == "True"
    assert "## Speed per op type (ONNX Runtime" in (out / "report.md").read_text()
    assert not (ptq_export / "model.onnx").exists()
    rows = read_csv(out / "layers.csv")
    model = build_model_for(cfg, str(fp32_run))
    convs = [n for n, l in model.named_sublayers() if isinstance(l, paddle.nn.Conv2D)]
    # eval mode: every conv but the auxiliary heads', each in its own row
    assert sorted(row["layer"] for row in rows) == sorted(
        n for n in convs if not n.startswith("aux_head"))
    assert len(rows) == len(ExportedProgram(ptq_export).layers)
    assert [int(row["position"]) for row in rows] == list(range(len(rows)))
    skipped = set(select_skipped(model, [SKIP]))
    for row in rows:
        if row["layer"] in skipped:
            assert row["quantized"] == "False"
            assert float(row["cos_isolated"]) == 1.0 and row["snr_db_isolated"] == "inf"
            assert row["act_scale"] == "" and row["weight_bits"] == ""
        else:
            assert row["quantized"] == "True", row["layer"]
            assert 0.9 < float(row["cos_isolated"]) < 1.0, row["layer"]
            assert float(row["act_scale"]) > 0 and row["weight_bits"] == "8"
            assert 0.0 <= float(row["clip_ratio"]) <= 1.0
            assert float(row["in_fp32_min"]) <= float(row["in_fp32_median"]) <= float(
                row["in_fp32_max"])
    params = read_csv(out / "quant_params.csv")
    weights = [p for p in params if p["kind"] == "weight"]
    assert len(weights) == len(rows) - len(skipped & {row["layer"] for row in rows})
    assert all(int(p["num_scales"]) == len(p["scales"].split(";")) for p in weights)
    samples = read_csv(out / "samples.csv")
    assert len(samples) == 3 and all(0.9 < float(s["output_cosine"]) <= 1.0 for s in samples)
    assert all(0.0 <= float(s["miou_deployed"]) <= 1.0 for s in samples)
    assert all(0.9 < float(s["pixel_agreement_deployed"]) <= 1.0 for s in samples)
    assert r.miou_deployed is not None and "deployed under Paddle Inference oneDNN INT8" in (
        out / "report.md").read_text()
    assert r.output_cosine > 0.95
    assert "layers that lose most on their own" in (out / "report.md").read_text()


def test_report_of_a_qat_checkpoint(fp32_run, tmp_path):
    cfg = cfg_with()
    qat = build_qat_model(cfg, fp32_weights=str(fp32_run))
    observe_activation_ranges(qat, [paddle.rand([2, 3, 48, 64]) * 2 - 1 for _ in range(3)])
    paddle.save(qat.model.state_dict(), str(tmp_path / "qat.pdparams"))
    r = quant_report(cfg, str(fp32_run), str(tmp_path / "report"),
                     qat_weights=str(tmp_path / "qat.pdparams"), num_images=2,
                     profile=["paddle", "openvino"])
    assert r.layers and all(row["quantized"] for row in r.layers)
    assert all(0.5 < row["cos_isolated"] < 1.0 for row in r.layers)
    # oneDNN quantizes the input of its INT8 convs; OpenVINO runs convs in both
    assert set(r.speed) == {"paddle", "openvino"}
    assert any(s.op == "quantize" and s.int8_ms > 0 for s in r.speed["paddle"])
    assert any(s.op.startswith("Convolution") and s.fp32_ms > 0 for s in r.speed["openvino"])
    text = (tmp_path / "report" / "report.md").read_text()
    assert "(Paddle Inference oneDNN, batch 1" in text and "(OpenVINO, batch 1" in text


def test_a_variant_with_layers_in_float_deploys_and_matches_the_fp32_program(
        fp32_run, ptq_export, tmp_path):
    """The fallback's candidates: every layer in float (and every other quantizer bypassed)
    is the FP32 model again; a variant saved to disk runs under Paddle Inference INT8."""
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 64)).astype("float32")
    fp32_dir = tmp_path / "fp32"
    export_model(cfg_with(), build_model_for(cfg_with(), str(fp32_run)), fp32_dir)
    fp32 = ExportedProgram(fp32_dir)
    int8 = ExportedProgram(ptq_export, float_source=fp32)
    ref = fp32.run(x, [fp32.output])[0]
    stripped = int8.run(x, [int8.output], int8.variant(keep_quantized=[]))[0]
    np.testing.assert_allclose(stripped, ref, rtol=1e-4, atol=1e-4)
    quantized = [l.position for l in int8.layers if l.quantized]
    half = int8.variant(float_layers=quantized[: len(quantized) // 2])
    out = int8.save(half, tmp_path / "half")
    shutil.copyfile(ptq_export / "deploy.yaml", out / "deploy.yaml")
    deployed = PaddleInferenceModel(out, use_mkldnn=True, int8=True, cpu_threads=2)
    reference = PaddleInferenceModel(ptq_export, use_mkldnn=True, int8=True, cpu_threads=2)
    labels = deployed.run(x)
    assert labels.shape == reference.run(x).shape
    assert (labels == PaddleInferenceModel(fp32_dir, cpu_threads=2).run(x)).mean() > 0.9


def test_a_float_variant_is_what_paddleslim_gives_for_skip_layers(fp32_run, ptq_export,
                                                                   tmp_path):
    """The fallback verifies a candidate on a variant of the all-quantized export; the
    config it writes is run by slim/ptq.py, where PaddleSlim skips those layers itself. Both
    must be the same model: the variant with SKIP's layers in float has the quantizers of
    the export calibrated with quant.skip_layers [SKIP] and computes what it computes (up to
    one-step rounding flips: two calibrations differ in a scale's last float bits)."""
    cfg = cfg_with()
    (full,) = ptq(cfg, str(fp32_run), PTQOptions(
        save_dir=str(tmp_path / "full"), algo="abs_max", batch_size=4,
        export=ExportOptions(input_shape=SHAPE), source=CalibrationSource(calib_num=8)))
    fp32_dir = export_model(cfg, build_model_for(cfg, str(fp32_run)), tmp_path / "fp32",
                            ExportOptions(input_shape=SHAPE))
    skipped = ExportedProgram(ptq_export)
    int8 = ExportedProgram(full.model_dir, float_source=ExportedProgram(fp32_dir))
    floats = [l.position for l in skipped.layers if not l.quantized]
    assert floats and all(l.quantized for l in int8.layers)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 3, 48, 64)).astype("float32")
    program = int8.variant(float_layers=floats)
    saved = int8.save(program, tmp_path / "variant")
    shutil.copyfile(full.model_dir / "deploy.yaml", saved / "deploy.yaml")
    def flags(model_dir):  # weights and inputs quantized alike (names differ per export)
        return [(op.op_type, op.weight_quantized, op.input_quantized)
                for op in weight_ops(model_dir)]

    assert flags(saved) == flags(ptq_export)

    def marks(prog):  # oneDNN runs a conv in float only when it carries PaddleSlim's marks
        ops = prog.program.global_block().ops
        return [(ops[l.op_index].attr("skip_quant") if ops[l.op_index].has_attr("skip_quant")
                 else None, ops[l.op_index].has_attr("quantization_type"))
                for l in prog.layers]

    assert marks(ExportedProgram(saved)) == marks(skipped)
    deployed = [PaddleInferenceModel(d, use_mkldnn=True, int8=True, cpu_threads=2).run(x)
                for d in (saved, ptq_export)]
    assert (deployed[0] == deployed[1]).mean() > 0.99
    variant = int8.run(x, [int8.output], program)[0]
    assert cosine(variant, skipped.run(x, [skipped.output])[0]) > 0.999


def break_one_layer(export: Path, out: Path) -> str:
    """A copy of ``export`` whose last quantized layer (the classifier) clips its input to
    0.1% of its range; returns that layer's weight name."""
    prog = ExportedProgram(export)
    layer = [l for l in prog.layers if l.quantized][-1]
    src = prog._producers()[layer.input_read]
    with prog._static():
        tensor = prog.scope.find_var(src.input("Scale")[0]).get_tensor()
        tensor.set(np.array(tensor) * 0.001, prog.place)
    prog.save(prog.program, out)
    for name in ("deploy.yaml", "config.yml"):
        shutil.copyfile(export / name, out / name)
    return layer.weight


def names_by_weight(cfg, weights) -> dict:
    model = build_model_for(cfg, weights)
    return {l.weight.name: n for n, l in model.named_sublayers()
            if isinstance(l, paddle.nn.Conv2D)}


def test_fallback_finds_the_broken_layer_and_writes_a_config_ptq_takes(
        fp32_run, ptq_export, tmp_path):
    cfg = cfg_with()
    broken = tmp_path / "broken"
    weight = break_one_layer(ptq_export, broken)
    opts = fb.FallbackOptions(save_config=str(tmp_path / "auto.yml"), rank_images=4,
                              work_dir=str(tmp_path / "work"), max_miou_drop=0.02)
    r = fb.quant_fallback(cfg, DEMO, str(fp32_run), opts, model_dir=str(broken))
    assert r.baseline.miou < r.fp32_miou - 0.02, "the broken layer must cost accuracy"
    assert r.best is not None and r.best.miou >= r.fp32_miou - 0.02
    culprit = [l for l in ExportedProgram(broken).layers if l.weight == weight][0]
    assert r.ranking[0].positions == [culprit.position]
    written = yaml.safe_load(Path(r.config_path).read_text())
    assert SKIP in written["quant"]["skip_layers"]  # the export's own float layer is kept
    assert r.best.layers[0] in written["quant"]["skip_layers"]
    text = Path(r.config_path).read_text()
    assert f"mIoU {r.best.miou:.4f}" in text and "budget: mIoU drop <= 0.02: met" in text
    loaded = load_config(r.config_path, SMALL)
    assert loaded.quant.skip_layers == written["quant"]["skip_layers"]
    assert fb.summary(r).startswith(f"{len(r.best.layers)} layers fall back to float")
    assert r.fp32_latency_ms > 0 and r.baseline.latency_ms > 0 and r.best.latency_ms > 0
    assert " ms" in fb.summary(r)
    table = (tmp_path / "work" / "fallback.md").read_text()
    assert "**chosen**" in table and r.ranking[0].name in table
    saved = json.loads((tmp_path / "work" / "fallback.json").read_text())
    assert saved["best"]["layers"] == r.best.layers and saved["fp32_miou"] == r.fp32_miou


def test_ctrl_c_during_the_search_writes_the_best_set_verified_so_far(
        fp32_run, ptq_export, tmp_path, monkeypatch):
    """Candidates scored by a stand-in: 1 and 2 layers miss, 4 meet, then Ctrl-C while 3
    are checked; the config holds the 4 that met the budget."""
    calls = []

    def candidate(self, int8, layers, names, model_dir, root):
        calls.append(len(layers))
        if len(calls) == 5:
            raise KeyboardInterrupt
        miou = {0: 0.1, 1: 0.2, 2: 0.3}.get(len(layers), 0.5)
        return fb.Candidate(list(layers), miou, None, 1.0, root / f"{len(layers)}")

    monkeypatch.setattr(fb.Deployment, "candidate", candidate)
    monkeypatch.setattr(fb, "rank_layers", lambda probe, names, *args, **kwargs: [
        fb.LayerScore(n, [i], 1) for i, n in enumerate(dict.fromkeys(names))])
    monkeypatch.setattr(fb.Deployment, "score", lambda self, d, int8: (0.5, None))
    opts = fb.FallbackOptions(save_config=str(tmp_path / "auto.yml"), rank_images=1,
                              work_dir=str(tmp_path / "work"), rank_by="cosine")
    with pytest.raises(KeyboardInterrupt, match="4 layers in float"):
        fb.quant_fallback(cfg_with(), DEMO, str(fp32_run), opts, model_dir=str(ptq_export))
    assert calls == [0, 1, 2, 4, 3]
    text = (tmp_path / "auto.yml").read_text()
    assert "(search interrupted)" in text
    assert len(yaml.safe_load(text)["quant"]["skip_layers"]) == 4 + 1  # + the export's SKIP


def test_search_bisects_to_the_smallest_prefix():
    ranking = [fb.LayerScore(f"l{i}", [i], 1) for i in range(10)]
    tried = []

    def verify(layers):
        return fb.Candidate(layers, 0.5 if len(layers) >= 6 else 0.1, None, 0.0, Path("."))

    best = fb.search(ranking, verify, 0.45, None, tried)
    assert len(best.layers) == 6
    assert [len(c.layers) for c in tried] == [1, 2, 4, 8, 6, 5]
    assert fb.search(ranking[:3], lambda l: fb.Candidate(l, 0.0, None, 0.0, Path(".")),
                     0.45, None, []) is None


@pytest.mark.fault("the quantized model given twice, or not at all",
                   command="python slim/quant_report.py --model_dir D --model_path P")
@pytest.mark.parametrize("args, expected", [
    (["--model_dir", "x", "--model_path", "y"], "not both or neither"),
    ([], "not both or neither"),
], ids=["both", "neither"])
def test_quant_report_refuses_an_ambiguous_model(fault, args, expected, tmp_path):
    r = subprocess.run([sys.executable, "slim/quant_report.py", "--config", DEMO,
                        "--fp32_model", "w.pdparams", "--save_dir", str(tmp_path / "r"), *args,
                        "--opts", *SMALL], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and expected in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r").exists()
    fault.seen(r.stderr, what=f"quant_report.py with {' '.join(args) or 'no INT8 model'}")


@pytest.mark.fault("--save_config names a file that exists",
                   command="python slim/quant_fallback.py --save_config EXISTING.yml")
def test_quant_fallback_never_replaces_a_config(fault, tmp_path):
    (tmp_path / "auto.yml").write_text("kept: 1\n")
    r = subprocess.run([sys.executable, "slim/quant_fallback.py", "--config", DEMO,
                        "--fp32_model", "w.pdparams", "--model_dir", "x", "--save_config",
                        str(tmp_path / "auto.yml"), "--opts", *SMALL], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "auto.yml exists" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "auto.yml").read_text() == "kept: 1\n"
    fault.seen(r.stderr, kept="the existing config, unchanged")


@pytest.mark.parametrize("start", ["ptq_algo", "qat_checkpoint"])
def test_fallback_starts_from_a_ptq_calibration_or_a_qat_checkpoint(start, fp32_run,
                                                                    tmp_path):
    """A budget the INT8 model already meets: no layer falls back, the config keeps the
    model's own settings and says so."""
    cfg = cfg_with()
    kwargs = {"ptq_algo": "abs_max",
              "calib_source": CalibrationSource(calib_num=4)} if start == "ptq_algo" else {}
    if start == "qat_checkpoint":
        qat = build_qat_model(cfg, fp32_weights=str(fp32_run))
        observe_activation_ranges(qat, [paddle.rand([2, 3, 48, 64]) * 2 - 1 for _ in range(3)])
        paddle.save(qat.model.state_dict(), str(tmp_path / "qat.pdparams"))
        kwargs = {"qat_weights": str(tmp_path / "qat.pdparams")}
    opts = fb.FallbackOptions(save_config=str(tmp_path / "auto.yml"), rank_images=2,
                              work_dir=str(tmp_path / "work"), max_miou_drop=0.99)
    r = fb.quant_fallback(cfg, DEMO, str(fp32_run), opts, **kwargs)
    assert r.best is r.baseline and r.best.layers == [] and not r.tried and not r.ranking
    assert yaml.safe_load((tmp_path / "auto.yml").read_text())["quant"]["skip_layers"] == []
    assert "the 0 layers below in float" in (tmp_path / "auto.yml").read_text()
    method = yaml.safe_load((tmp_path / "work/int8/deploy.yaml").read_text())["Quant"]["method"]
    assert method == ("ptq" if start == "ptq_algo" else "qat")


@pytest.mark.fault("--model_dir is an FP32 export, or has no model files",
                   command="python slim/quant_report.py --model_dir FP32_EXPORT")
@pytest.mark.parametrize("script", ["slim/quant_report.py", "slim/quant_fallback.py"])
@pytest.mark.parametrize("export", ["fp32", "empty"])
def test_a_model_dir_that_is_not_an_int8_export_is_refused_before_any_file(
        fault, script, export, tmp_path):
    model_dir = tmp_path / "export"
    model_dir.mkdir()
    if export == "fp32":
        for name in ("model.pdmodel", "model.pdiparams"):
            (model_dir / name).write_bytes(b"")
        (model_dir / "deploy.yaml").write_text("Deploy:\n  model: model.pdmodel\n")
    out = ["--save_dir", str(tmp_path / "r")] if script.endswith("report.py") else [
        "--save_config", str(tmp_path / "auto.yml"), "--work_dir", str(tmp_path / "r")]
    r = subprocess.run([sys.executable, script, "--config", DEMO, "--fp32_model", "w.pdparams",
                        "--model_dir", str(model_dir), *out, "--opts", *SMALL], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    expected = "is FP32" if export == "fp32" else "inference model file not found"
    assert r.returncode == 2 and expected in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "auto.yml").exists()
    fault.seen(r.stderr, what=f"{script} --model_dir with {export} export")


@pytest.mark.parametrize("field, value, message", [
    ("max_miou_drop", 1.5, "--max_miou_drop must be in"),
    ("rank_by", "loss", "--rank_by must be one of miou, cosine, deployed"),
    ("rank_images", 0, "--rank_images must be >= 1"),
])
def test_fallback_options_out_of_range_fail_before_any_file(field, value, message, tmp_path):
    opts = fb.FallbackOptions(save_config=str(tmp_path / "auto.yml"),
                              work_dir=str(tmp_path / "work"), **{field: value})
    with pytest.raises(ValueError, match=message):
        fb.quant_fallback(cfg_with(), DEMO, "w.pdparams", opts, model_dir="x")
    assert not (tmp_path / "work").exists() and not (tmp_path / "auto.yml").exists()



def test_the_deployed_ranking_finds_the_broken_layer_under_onednn(fp32_run, ptq_export,
                                                                  tmp_path):
    cfg = cfg_with()
    broken = tmp_path / "broken"
    weight = break_one_layer(ptq_export, broken)
    model, dataset = fp32_model_and_val_set(cfg, str(fp32_run))
    fp32_dir = export_model(cfg, model, str(tmp_path / "fp32"))
    fp32 = ExportedProgram(fp32_dir)
    int8 = ExportedProgram(broken, float_source=fp32)
    samples = [s for _, s in zip(range(2), build_eval_loader(dataset))]
    culprit = [l for l in int8.layers if l.weight == weight][0]
    # the other layers in three groups (one predictor build per group keeps this quick)
    names = ["culprit" if l is culprit else f"group{l.position % 3}" for l in int8.layers]
    probe = fb.DeployedProbe(fp32, int8, samples, dataset.num_classes, dataset.ignore_index,
                             work_dir=tmp_path / "rank", cpu_threads=1)
    ranking = fb.rank_layers(probe, names, [1] * len(names), "deployed")
    assert len(ranking) == 4 and ranking[0].name == "culprit"
    assert ranking[0].regain_miou > 0.02 and ranking[0].loss_miou == 0.0  # loss not scored
