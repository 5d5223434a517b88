"""Deployment: run an exported model (deploy.yaml + inference files) on images.

``Predictor`` reads an export, preprocesses with its deploy.yaml transforms, runs a
``Backend`` (Paddle Inference on CPU/oneDNN or GPU/TensorRT, ONNX Runtime, OpenVINO) and maps the results back to
each image's size; ``save_masks`` writes palette masks and overlays.
"""
from .backend import Backend, create_backend
from .deploy_file import DeployInfo, load_deploy_info
from .masks import Prediction, save_masks
from .options import PredictorOptions
from .postprocess import label_map
from .predictor import Predictor, same_shape_batches

__all__ = ["Backend", "DeployInfo", "Prediction", "Predictor", "PredictorOptions",
           "create_backend",
           "label_map", "load_deploy_info", "same_shape_batches", "save_masks"]
