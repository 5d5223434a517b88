"""The deployment workflows behind the CLI scripts: export a model with the config's
preprocessing, score an exported model on the val set, predict image files.

Like :mod:`segq.engine.workflows`, each takes a validated config and returns a result; the
training engine imports nothing from here.
"""
from __future__ import annotations

from pathlib import Path

import paddle

from ..builders import build_dataset, build_model_for
from ..config import SegConfig, dump_config
from ..metrics import EvalResult
from .backend import Backend
from .export import ExportOptions, ModelWriter, export_inference_model
from .postprocess import label_map


def deploy_transforms(cfg: SegConfig) -> list[dict]:
    """Preprocessing for deploy.yaml: ``export.transforms``, else the val dataset's."""
    if cfg.export.transforms is not None:
        return [t.to_dict() for t in cfg.export.transforms]
    if cfg.val_dataset is not None:
        return list(cfg.val_dataset.kwargs().get("transforms", []))
    return [{"type": "Normalize"}]


def export_model(cfg: SegConfig, model: paddle.nn.Layer, save_dir: str | Path,
                 options: ExportOptions = ExportOptions(),
                 writer: ModelWriter = ModelWriter()) -> Path:
    """Export ``model`` with the config's deploy transforms and write the resolved config
    beside it."""
    out = export_inference_model(model, save_dir, options, deploy_transforms(cfg), writer)
    dump_config(cfg, Path(out) / "config.yml")
    return Path(out)


def export(cfg: SegConfig, model_path: str | None, save_dir: str,
           options: ExportOptions = ExportOptions()) -> Path:
    """export.py: the config's model with ``model_path`` weights."""
    return export_model(cfg, build_model_for(cfg, model_path), save_dir, options)


def backend_label_fn(backend: Backend):
    """``sample -> label map`` for an exported model run by ``backend``; handles argmax
    outputs (``[N, H, W]``) and logits/probabilities (``[N, C, H, W]``)."""
    def predict(sample: dict):
        out = backend.run(sample["img"][None])
        return label_map(out[0], sample.get("trans_info"))

    return predict


def evaluate_backend(cfg: SegConfig, backend: Backend, num_workers: int = 0,
                     result_json: str | None = None) -> EvalResult:
    """mIoU on the val dataset of an exported model run by ``backend``."""
    from ..engine.evaluator import evaluate_with

    dataset = build_dataset(cfg.val_dataset, "val_dataset")
    result = evaluate_with(backend_label_fn(backend), dataset, num_workers)
    if result_json:
        result.write_json(result_json)
    return result


def evaluate_inference_model(cfg: SegConfig, model_dir: str, int8: bool = False,
                             cpu_threads: int = 2, num_workers: int = 0,
                             result_json: str | None = None) -> EvalResult:
    """mIoU of an exported model under Paddle Inference (oneDNN) on the val dataset."""
    from .paddle_inference import PaddleInferenceModel

    backend = PaddleInferenceModel(model_dir, use_mkldnn=True, cpu_threads=cpu_threads,
                                   int8=int8)
    return evaluate_backend(cfg, backend, num_workers, result_json)


def dygraph_predict_files(cfg: SegConfig, model_path: str | None):
    """``predict_files(paths, skipped=None) -> Predictions``, as
    :meth:`segq.deploy.Predictor.predict_files` but with the config's dygraph model
    (``model_path`` weights) and test settings, preprocessing with the deploy transforms, so
    predict.py and deploy/python/infer.py read, skip and write images the same way."""
    from ..data.transforms import build_transforms, transform_image
    from ..engine.evaluator import dygraph_label_fn
    from .images import read_images
    from .masks import Prediction

    model = build_model_for(cfg, model_path)
    model.eval()
    predict = dygraph_label_fn(model, cfg.test_config)
    transforms = build_transforms(deploy_transforms(cfg))

    def predict_files(paths, skipped=None):
        for path, rgb in read_images(paths, skipped):
            yield Prediction(path, rgb, predict(transform_image(transforms, rgb, str(path))))

    return predict_files
