"""Weights from outside are untrusted: a crafted pickle runs nothing, every file segq and
Paddle write still loads exactly as paddle.load reads it, and downloads are https-only and
checked against a pinned sha256 before anything is unpacked. No test touches the network."""
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import paddle
import pytest

from segq import safe_load
from segq.builders import resolve_pretrained
from segq.checkpoint import (CheckpointError, TrainState, load_weights, resume_checkpoint,
                             save_checkpoint)
from segq.data import download

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs/demo/bisenetv2_synthetic_96x128_300.yml"
SMALL = ["train_dataset.num_samples=16", "val_dataset.num_samples=4",
         "train_dataset.image_size=[48, 64]", "val_dataset.image_size=[48, 64]",
         "batch_size=4"]


class Tiny(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 3, 1)
        self.bn = paddle.nn.BatchNorm2D(3)


def run_script(*args):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


# ---------------------------------------------------------------- crafted pickles
class EvalPayload:
    """Unpickling this calls builtins.eval, which writes ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return eval, (f"open({self.marker!r}, 'w').write('code ran')",)


class SystemPayload:
    """Unpickling this calls os.system (pickled as posix.system), which creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def write_evil(path: Path, payload, protocol=4) -> Path:
    """A plausible state dict (real arrays) with the payload as one of its values."""
    state = {"conv.weight": np.zeros((3, 3, 1, 1), np.float32), "conv.bias": payload,
             "StructuredToParameterName@@": {"conv.weight": "conv2d_0.w_0"}}
    path.write_bytes(pickle.dumps(state, protocol=protocol))
    return path


def forbidden_global(payload) -> str:
    return "builtins.eval" if isinstance(payload, EvalPayload) else f"{os.system.__module__}.system"


@pytest.mark.parametrize("make", [EvalPayload, SystemPayload], ids=["eval", "os.system"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_crafted_pickle_is_refused_before_it_runs(tmp_path, make, protocol):
    marker = tmp_path / "marker"
    payload = make(marker)
    evil = write_evil(tmp_path / "evil.pdparams", payload, protocol)
    with pytest.raises(CheckpointError) as info:
        load_weights(Tiny(), evil)
    message = str(info.value)
    assert "\n" not in message
    assert str(evil) in message and forbidden_global(payload) in message, message
    assert message.startswith(f"refusing to load {evil}")
    assert not marker.exists()
    # control: the file really is an exploit, plain unpickling runs it
    pickle.loads(evil.read_bytes())
    if isinstance(payload, SystemPayload):
        assert marker.exists()
    else:
        assert marker.read_text() == "code ran"


@pytest.mark.parametrize("name", ["model.pdparams", "model.pdopt", "rng.pdstate"])
def test_crafted_file_in_a_checkpoint_dir_is_refused_on_resume(tmp_path, name):
    model = Tiny()
    opt = paddle.optimizer.Momentum(0.1, parameters=model.parameters())
    ck = save_checkpoint(tmp_path / "iter_1", model, opt, TrainState(iteration=1))
    marker = tmp_path / "marker"
    write_evil(ck / name, EvalPayload(marker))
    fresh = Tiny()
    with pytest.raises(CheckpointError, match=rf"refusing to load .*{name}: it asks to run "
                                              r"builtins\.eval"):
        resume_checkpoint(ck, fresh, paddle.optimizer.Momentum(0.1,
                                                               parameters=fresh.parameters()))
    assert not marker.exists()


def test_an_allowed_global_cannot_smuggle_objects_in(tmp_path):
    # numpy's rebuild functions are allowed; an object array made with them is still refused
    arr = np.empty(2, dtype=object)
    arr[:] = ["a", "b"]
    (tmp_path / "obj.pdparams").write_bytes(pickle.dumps({"w": arr}))
    with pytest.raises(CheckpointError, match="array of Python objects"):
        load_weights(Tiny(), tmp_path / "obj.pdparams")
    # protocol 2's bytes helper only decodes latin1, no other codec
    rot = pickle.dumps(b"x", protocol=2).replace(b"latin1", b"rot_13")
    (tmp_path / "codec.pdparams").write_bytes(rot)
    with pytest.raises(CheckpointError, match="only rebuilds latin1 bytes here, not 'rot_13'"):
        load_weights(Tiny(), tmp_path / "codec.pdparams")


@pytest.mark.fault("a .pdparams crafted to run code when unpickled (builtins.eval)",
                   command="python val.py --model_path evil.pdparams")
def test_val_refuses_a_crafted_model_path(fault, tmp_path):
    marker = tmp_path / "marker"
    evil = write_evil(tmp_path / "evil.pdparams", EvalPayload(marker))
    r = run_script("val.py", "--config", str(DEMO), "--model_path", str(evil), "--opts", *SMALL)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: refusing to load {evil}") and "builtins.eval" in last
    assert "Traceback" not in r.stderr and not marker.exists()
    fault.seen(r.stderr.replace(f"{tmp_path}/", ""),
               kept="no code ran (marker file not created); nothing written")


@pytest.mark.fault("a config's model.pretrained names a .pdparams crafted to run code "
                   "(os.system)",
                   command="python train.py --opts model.pretrained=evil.pdparams")
def test_train_refuses_crafted_pretrained_weights(fault, tmp_path):
    marker = tmp_path / "marker"
    evil = write_evil(tmp_path / "evil.pdparams", SystemPayload(marker))
    r = run_script("train.py", "--config", str(DEMO), "--save_dir", str(tmp_path / "run"),
                   "--iters", "2", "--opts", *SMALL, f"model.pretrained={evil}")
    assert r.returncode == 2, r.stderr
    assert f"refusing to load {evil}" in r.stderr and "system" in r.stderr
    assert not marker.exists() and not (tmp_path / "run").exists()
    fault.seen(r.stderr.replace(f"{tmp_path}/", ""),
               kept="no code ran (marker file not created); --save_dir not created")


@pytest.mark.fault("a checkpoint dir whose model.pdopt is crafted to run code",
                   command="python train.py --resume_model output/iter_2")
def test_train_refuses_a_crafted_resume_checkpoint(fault, tmp_path):
    from segq import builders
    from segq.builders import build_model_for
    from segq.config import load_config

    cfg = load_config(DEMO, SMALL)
    model = build_model_for(cfg)
    opt = builders.build_optimizer(cfg.optimizer, model,
                                   builders.build_lr_scheduler(cfg.lr_scheduler, cfg.iters))
    ck = save_checkpoint(tmp_path / "output/iter_2", model, opt, TrainState(iteration=2))
    marker = tmp_path / "marker"
    write_evil(ck / "model.pdopt", EvalPayload(marker))
    r = run_script("train.py", "--config", str(DEMO), "--save_dir", str(tmp_path / "run"),
                   "--iters", "4", "--resume_model", str(ck), "--opts", *SMALL)
    assert r.returncode == 2, r.stderr
    assert f"refusing to load {ck / 'model.pdopt'}" in r.stderr
    assert not marker.exists() and not (tmp_path / "run").exists()
    fault.seen(r.stderr.replace(f"{tmp_path}/", ""),
               kept="no code ran (marker file not created); --save_dir not created")


@pytest.mark.fault("a truncated .pdparams",
                   command="segq.checkpoint.load_weights(model, 'cut.pdparams')")
def test_truncated_weights_are_one_clear_line(fault, tmp_path):
    paddle.save(Tiny().state_dict(), str(tmp_path / "full.pdparams"))
    data = (tmp_path / "full.pdparams").read_bytes()
    (tmp_path / "cut.pdparams").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_weights(Tiny(), tmp_path / "cut.pdparams")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"cannot read {tmp_path / 'cut.pdparams'}")
    fault.seen(message.replace(f"{tmp_path}/", ""), kept="nothing loaded")


# ---------------------------------------------------------------- what Paddle writes loads
def assert_same(a, b, where="$"):
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, paddle.Tensor):
        assert (a.dtype, a.shape, a.name) == (b.dtype, b.shape, b.name), where
        assert a.numpy().tobytes() == b.numpy().tobytes(), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif type(a).__name__ == "GeneratorState":
        assert a.__getstate__() == b.__getstate__(), where
    else:
        assert a == b, (where, a, b)


@pytest.mark.parametrize("opt_cls", ["Momentum", "AdamW"])
def test_every_checkpoint_file_reads_exactly_as_paddle_load(tmp_path, opt_cls):
    model = Tiny()
    sched = paddle.optimizer.lr.PolynomialDecay(0.1, decay_steps=10)
    opt = getattr(paddle.optimizer, opt_cls)(learning_rate=sched, parameters=model.parameters())
    model.bn(model.conv(paddle.rand([2, 3, 4, 4]))).mean().backward()
    opt.step()
    sched.step()
    ck = save_checkpoint(tmp_path / "iter_1", model, opt, TrainState(iteration=1))
    for name in ("model.pdparams", "model.pdopt", "rng.pdstate"):
        assert_same(paddle.load(str(ck / name)), safe_load.load(ck / name), name)
    assert "LR_Scheduler" in safe_load.load(ck / "model.pdopt")


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_paddle_state_dicts_and_tensors_of_every_protocol_load(tmp_path, protocol):
    # PaddleSeg's published weights are paddle.save(state_dict) files from Paddle 2.x
    # (protocol 2 there: bytes pickled through _codecs.encode, builtins as __builtin__)
    state = {"w": paddle.rand([2, 3]), "i": paddle.to_tensor([1, 2], dtype="int64"),
             "h": paddle.rand([2]).astype("float16")}
    objects = {"state.pdparams": state, "tensor.pd": paddle.rand([4]),
               "nested.pd": [paddle.rand([2]), {"x": paddle.rand([1]), "n": 3, "s": "a"}]}
    for name, obj in objects.items():
        paddle.save(obj, str(tmp_path / name), protocol=protocol)
        assert_same(paddle.load(str(tmp_path / name)), safe_load.load(tmp_path / name), name)


def test_plain_numpy_pickles_of_any_protocol_load(tmp_path):
    for protocol in (2, 5):  # 5: numpy's _frombuffer path
        data = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "k": np.float32(1.5)}
        (tmp_path / "np.pkl").write_bytes(pickle.dumps(data, protocol=protocol))
        out = safe_load.load(tmp_path / "np.pkl")
        np.testing.assert_array_equal(out["w"].numpy(), data["w"])
        assert out["k"] == np.float32(1.5)


# ---------------------------------------------------------------- downloads
def pdparams_archive(tmp_path: Path) -> tuple[bytes, str]:
    paddle.save(Tiny().state_dict(), str(tmp_path / "model.pdparams"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(tmp_path / "model.pdparams", arcname="tiny/model.pdparams")
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


@pytest.fixture
def served(monkeypatch):
    """urlopen replaced by a dict of URL -> bytes; records the URLs asked for."""
    files, asked = {}, []

    def urlopen(url, timeout=None):
        asked.append(url)
        if url not in files:
            raise urllib.error.URLError("not served")
        return io.BytesIO(files[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return files, asked


URL = "https://example.invalid/weights/tiny.tar.gz"


def test_https_archive_with_matching_sha256_is_fetched_checked_and_unpacked(tmp_path, served):
    files, asked = served
    files[URL], sha = pdparams_archive(tmp_path)
    found = resolve_pretrained(f"{URL}#sha256={sha.upper()}", cache_dir=tmp_path / "cache")
    assert found == tmp_path / "cache/tiny/tiny/model.pdparams"
    load_weights(Tiny(), found)
    assert asked == [URL]  # the fragment is not sent
    resolve_pretrained(f"{URL}#sha256={sha}", cache_dir=tmp_path / "cache")
    assert asked == [URL]  # cached and still matching: not fetched again


@pytest.mark.fault("a downloaded weights archive whose bytes differ from the pinned sha256",
                   command="segq.builders.resolve_pretrained('https://.../tiny.tar.gz"
                           "#sha256=<other hex>')")
def test_sha256_mismatch_deletes_the_download_before_unpacking(fault, tmp_path, served,
                                                               monkeypatch):
    files, _ = served
    files[URL], good = pdparams_archive(tmp_path)
    bad = "0" * 64
    unpacked = []
    monkeypatch.setattr(download, "extract_archive", lambda *a: unpacked.append(a))
    with pytest.raises(download.DownloadError) as info:
        resolve_pretrained(f"{URL}#sha256={bad}", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert f"expected {bad}, got {good}" in message and "\n" not in message
    assert unpacked == [] and list((tmp_path / "cache").rglob("*")) == [tmp_path / "cache/tiny"]
    fault.seen(message, kept="download deleted; nothing unpacked or loaded")


def test_known_sha256_table_pins_urls_without_a_fragment(tmp_path, served, monkeypatch):
    files, _ = served
    files[URL], good = pdparams_archive(tmp_path)
    assert download.KNOWN_SHA256 == {}  # nothing recorded that could not be verified here
    monkeypatch.setitem(download.KNOWN_SHA256, URL, "f" * 64)
    with pytest.raises(download.DownloadError, match=f"expected {'f' * 64}, got {good}"):
        resolve_pretrained(URL, cache_dir=tmp_path / "cache")


def test_a_cached_file_that_no_longer_matches_is_fetched_again(tmp_path, served):
    files, asked = served
    url = "https://example.invalid/w/model.pdparams"
    paddle.save(Tiny().state_dict(), str(tmp_path / "w.pdparams"))
    files[url] = (tmp_path / "w.pdparams").read_bytes()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache/model.pdparams").write_bytes(b"stale")
    sha = hashlib.sha256(files[url]).hexdigest()
    found = resolve_pretrained(f"{url}#sha256={sha}", cache_dir=tmp_path / "cache")
    assert asked == [url] and found.read_bytes() == files[url]


@pytest.mark.parametrize("url", ["http://example.invalid/w.tar.gz",
                                 "ftp://example.invalid/w.pdparams"])
def test_weights_only_come_over_https(tmp_path, served, url):
    _, asked = served
    with pytest.raises(download.DownloadError, match=r"refusing to download weights from "
                                                     r".*only https:// URLs"):
        resolve_pretrained(url, cache_dir=tmp_path / "cache")
    assert asked == [] and not (tmp_path / "cache").exists()
    with pytest.raises(download.DownloadError, match="#sha256=<64 hex digits>"):
        resolve_pretrained("https://example.invalid/w.tar.gz#md5=abc",
                           cache_dir=tmp_path / "cache")


@pytest.mark.fault("model.pretrained is a plain http:// URL",
                   command="python val.py --opts model.pretrained=http://host/w.tar.gz")
def test_cli_refuses_http_weights(fault, tmp_path):
    url = "http://example.invalid/bisenet.tar.gz"
    r = run_script("val.py", "--config", str(DEMO), "--opts", *SMALL, f"model.pretrained={url}")
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: refusing to download weights from {url}"), r.stderr
    fault.seen(r.stderr, kept="nothing downloaded")
