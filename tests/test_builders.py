"""Builders: pretrained weights from a path or an (archive) URL, strictly loaded; class count."""
import tarfile

import paddle
import pytest

from segq.builders import build_model, num_classes_of, resolve_pretrained
from segq.checkpoint import CheckpointError
from segq.config import Component, load_config
from segq.data.download import DownloadError


def _bisenet_weights(path, num_classes=4):
    model = build_model(Component(type="BiSeNetV2"), num_classes)
    paddle.save(model.state_dict(), str(path))
    return model


def test_pretrained_from_local_file_and_archive_url(tmp_path):
    ref = _bisenet_weights(tmp_path / "model.pdparams")
    with tarfile.open(tmp_path / "bisenet.tar.gz", "w:gz") as tf:
        tf.add(tmp_path / "model.pdparams", arcname="bisenet/model.pdparams")
    url = (tmp_path / "bisenet.tar.gz").as_uri()  # file:// stands in for the network
    found = resolve_pretrained(url, cache_dir=tmp_path / "cache")
    assert found.name == "model.pdparams" and "cache" in found.parts
    model = build_model(Component(type="BiSeNetV2", pretrained=str(found)), 4)
    for (k, a), b in zip(ref.state_dict().items(), model.state_dict().values()):
        assert paddle.equal_all(a, b), k


def test_pretrained_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained weights not found"):
        resolve_pretrained(str(tmp_path / "nope.pdparams"))
    with pytest.raises(DownloadError, match="could not download"):
        resolve_pretrained((tmp_path / "missing.tar.gz").as_uri(), cache_dir=tmp_path / "c")
    _bisenet_weights(tmp_path / "eleven.pdparams", num_classes=11)
    with pytest.raises(CheckpointError, match="shape_mismatch"):
        build_model(Component(type="BiSeNetV2", pretrained=str(tmp_path / "eleven.pdparams")), 4)


def test_num_classes_comes_from_dataset_and_must_agree(tmp_path):
    cfg = load_config("configs/bisenetv2/bisenetv2_camvid_360x480_2400.yml")
    assert num_classes_of(cfg) == 11
    with pytest.raises(ValueError, match="model.num_classes is 5 but the dataset has 11"):
        build_model(Component(type="BiSeNetV2", num_classes=5), 11)
