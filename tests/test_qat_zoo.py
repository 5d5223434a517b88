"""QAT fine-tuning -> evaluation -> INT8 export -> Paddle Inference INT8 evaluation for every
registered network, through the library functions behind slim/qat_*.py, on tiny inputs."""
import paddle
import pytest

from segq.deploy.workflows import evaluate_inference_model
from segq.engine.workflows import TrainOptions
from segq.quant.exported_ops import weight_ops
from segq.quant.qat import qat_evaluate, qat_export, qat_train
from segq.registry import MODELS
from tests import helpers
from tests.zoo import build_test_model


def tiny_config(name: str, num_outputs: int):
    return helpers.tiny_config(name, num_outputs, quant={"skip_layers": []})


@pytest.mark.parametrize("name", MODELS.names())
def test_qat_scripts_work_for_every_zoo_model(name, tmp_path):
    model = build_test_model(name, num_classes=4)
    model.train()
    num_outputs = len(model(paddle.randn([2, 3, 64, 64])))
    fp32 = tmp_path / "fp32.pdparams"
    paddle.save(model.state_dict(), str(fp32))
    cfg = tiny_config(name, num_outputs)

    state = qat_train(cfg, TrainOptions(save_dir=str(tmp_path / "qat"), model_path=str(fp32),
                                        save_interval=2, log_iters=1))
    assert state.iteration == 2
    checkpoint = str(tmp_path / "qat/iter_2/model.pdparams")
    assert any(k.endswith("scale") or ".scale" in k
               for k in paddle.load(checkpoint)), "the checkpoint holds fake-quant scales"
    dygraph = qat_evaluate(cfg, checkpoint)
    out = qat_export(cfg, checkpoint, str(tmp_path / "int8"))
    ops = weight_ops(out)
    assert ops and all(op.weight_quantized for op in ops)
    deployed = evaluate_inference_model(cfg, str(out), int8=True)
    assert dygraph.num_images == deployed.num_images == 2
    assert 0.0 <= deployed.miou <= 1.0 and 0.0 <= dygraph.miou <= 1.0
    # (how closely INT8 follows the fake-quant model is pinned per zoo model by
    # tests/test_qat_export.py at cosine >= 0.99; label agreement of random-weight models on
    # two 64x64 images is dominated by near-tied class scores)
