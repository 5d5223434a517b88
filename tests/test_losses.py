"""Losses: numpy references, ignore_index handling, degenerate batches, speed guard."""
import time

import numpy as np
import paddle
import pytest

import segq.losses  # noqa: F401  (registers losses)
from segq.registry import LOSSES

IGNORE = 255


def make_batch(n=2, c=5, h=6, w=7, ignore_frac=0.2, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, c, h, w)).astype("float32")
    label = rng.integers(0, c, (n, h, w)).astype("int64")
    label[rng.random((n, h, w)) < ignore_frac] = IGNORE
    return logits, label


def np_nll(logits, label):
    """Per-pixel softmax cross entropy [N, H, W]; 0 at ignored pixels."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    safe = np.where(label == IGNORE, 0, label)
    nll = -np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
    return np.where(label == IGNORE, 0.0, nll)


def run(loss, logits, label, grad=False):
    x = paddle.to_tensor(logits, stop_gradient=not grad)
    out = loss(x, paddle.to_tensor(label))
    if grad:
        out.backward()
        return out, x.grad.numpy()
    return out


def test_all_losses_registered():
    for name in ("CrossEntropyLoss", "OhemCrossEntropyLoss", "DiceLoss", "MixedLoss"):
        assert name in LOSSES


def test_cross_entropy_matches_numpy():
    logits, label = make_batch()
    valid = label != IGNORE
    expected = np_nll(logits, label).sum() / valid.sum()
    out = run(LOSSES.build({"type": "CrossEntropyLoss"}), logits, label)
    assert out.ndim == 0
    np.testing.assert_allclose(float(out), expected, rtol=1e-5)


def test_cross_entropy_class_weights_are_a_weighted_mean():
    logits, label = make_batch()
    weight = np.array([1.0, 2.0, 0.5, 0.0, 3.0], dtype="float32")
    w_pix = np.where(label == IGNORE, 0.0, weight[np.where(label == IGNORE, 0, label)])
    expected = (np_nll(logits, label) * w_pix).sum() / w_pix.sum()
    out = run(LOSSES.build({"type": "CrossEntropyLoss", "weight": weight.tolist()}), logits, label)
    np.testing.assert_allclose(float(out), expected, rtol=1e-5)


def test_cross_entropy_avg_over_all_pixels_and_top_k():
    logits, label = make_batch()
    nll = np_nll(logits, label)
    out = run(LOSSES.build({"type": "CrossEntropyLoss", "avg_non_ignore": False}), logits, label)
    np.testing.assert_allclose(float(out), nll.sum() / nll.size, rtol=1e-5)

    logits, label = make_batch(ignore_frac=0.0)
    nll = np.sort(np_nll(logits, label).ravel())[::-1]
    k = int(0.25 * nll.size)
    out = run(LOSSES.build({"type": "CrossEntropyLoss", "top_k_percent_pixels": 0.25}),
              logits, label)
    np.testing.assert_allclose(float(out), nll[:k].mean(), rtol=1e-5)


@pytest.mark.parametrize("cfg", [
    {"type": "CrossEntropyLoss"},
    {"type": "CrossEntropyLoss", "weight": [1.0, 2.0, 1.0, 1.0, 0.5]},
    {"type": "CrossEntropyLoss", "top_k_percent_pixels": 0.3},
    {"type": "OhemCrossEntropyLoss", "min_kept": 10},
    {"type": "DiceLoss"},
    {"type": "MixedLoss", "losses": [{"type": "CrossEntropyLoss"}, {"type": "DiceLoss"}],
     "coef": [1.0, 0.5]},
])
def test_ignored_pixels_contribute_nothing(cfg):
    loss = LOSSES.build(cfg)
    logits, label = make_batch()
    out, grad = run(loss, logits, label, grad=True)
    ignored = label == IGNORE
    # The gradient at ignored pixels is zero, and changing their logits changes nothing.
    assert np.all(grad.transpose(0, 2, 3, 1)[ignored] == 0)
    other = logits.copy()
    other.transpose(0, 2, 3, 1)[ignored] = 50.0
    np.testing.assert_allclose(float(run(loss, other, label)), float(out), rtol=1e-6)


@pytest.mark.parametrize("cfg", [
    {"type": "CrossEntropyLoss"},
    {"type": "CrossEntropyLoss", "weight": [1.0] * 5},
    {"type": "CrossEntropyLoss", "top_k_percent_pixels": 0.5},
    {"type": "CrossEntropyLoss", "avg_non_ignore": False},
    {"type": "OhemCrossEntropyLoss"},
    {"type": "OhemCrossEntropyLoss", "min_kept": 0},
    {"type": "DiceLoss"},
    {"type": "DiceLoss", "smooth": 0.0},
    {"type": "MixedLoss", "losses": [{"type": "CrossEntropyLoss"}, {"type": "DiceLoss"}],
     "coef": [1.0, 1.0]},
])
def test_all_ignored_batch_gives_zero_not_nan(cfg):
    logits, label = make_batch()
    label[:] = IGNORE
    out, grad = run(LOSSES.build(cfg), logits, label, grad=True)
    assert float(out) == 0.0
    assert np.all(grad == 0)


def test_label_dtype_and_shape_are_checked_and_cast():
    logits, label = make_batch()
    loss = LOSSES.build({"type": "CrossEntropyLoss"})
    ref = float(run(loss, logits, label))
    assert float(run(loss, logits, label.astype("int32"))) == pytest.approx(ref)
    assert float(run(loss, logits, label[:, None])) == pytest.approx(ref)  # [N, 1, H, W]
    with pytest.raises(ValueError, match="label must be"):
        run(loss, logits, label[:, :3])
    with pytest.raises(ValueError, match="3 class weights .* 5 classes"):
        run(LOSSES.build({"type": "CrossEntropyLoss", "weight": [1, 1, 1]}), logits, label)


def test_ohem_keeps_hard_pixels():
    logits, label = make_batch(n=2, h=10, w=10)
    valid = label != IGNORE
    nll = np_nll(logits, label)
    ce = nll.sum() / valid.sum()
    # threshold above every probability keeps every valid pixel: plain CE
    keep_all = LOSSES.build({"type": "OhemCrossEntropyLoss", "thresh": 1.01, "min_kept": 0})
    np.testing.assert_allclose(float(run(keep_all, logits, label)), ce, rtol=1e-5)
    # no pixel is below thresh 0, so exactly the min_kept hardest pixels are kept
    k = 20
    hardest = LOSSES.build({"type": "OhemCrossEntropyLoss", "thresh": 0.0, "min_kept": k})
    expected = np.sort(nll[valid])[::-1][:k].mean()
    np.testing.assert_allclose(float(run(hardest, logits, label)), expected, rtol=1e-5)
    # with no more valid pixels than min_kept all of them are kept
    few = LOSSES.build({"type": "OhemCrossEntropyLoss", "thresh": 0.0, "min_kept": 10**6})
    np.testing.assert_allclose(float(run(few, logits, label)), ce, rtol=1e-5)
    # mining only ever raises the average
    mined = LOSSES.build({"type": "OhemCrossEntropyLoss", "thresh": 0.5, "min_kept": 5})
    assert float(run(mined, logits, label)) >= ce


def np_dice(logits, label, weight=None, smooth=1.0):
    n, c = logits.shape[:2]
    valid = (label != IGNORE).reshape(n, 1, -1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob = (e / e.sum(axis=1, keepdims=True)).reshape(n, c, -1) * valid
    onehot = (np.arange(c)[None, :, None] == label.reshape(n, 1, -1)) * valid
    inter = (prob * onehot).sum(-1)
    card = prob.sum(-1) + onehot.sum(-1)
    per_class = (1 - (2 * inter + smooth) / (card + smooth)).mean(0)
    return (per_class * (1 if weight is None else np.asarray(weight))).sum() / c


def test_dice_matches_numpy_and_its_extremes():
    logits, label = make_batch()
    weight = [1.0, 0.5, 2.0, 1.0, 0.0]
    for cfg, w in (({"type": "DiceLoss"}, None), ({"type": "DiceLoss", "weight": weight}, weight)):
        np.testing.assert_allclose(float(run(LOSSES.build(cfg), logits, label)),
                                   np_dice(logits, label, w), rtol=1e-5)
    # a confident perfect prediction scores ~0, a confident wrong one ~1
    c = logits.shape[1]
    label_ok = np.where(label == IGNORE, 0, label)
    perfect = (np.eye(c)[label_ok].transpose(0, 3, 1, 2) * 40.0).astype("float32")
    dice = LOSSES.build({"type": "DiceLoss", "smooth": 0.0})
    assert float(run(dice, perfect, label)) < 1e-3
    wrong = (np.eye(c)[(label_ok + 1) % c].transpose(0, 3, 1, 2) * 40.0).astype("float32")
    present = len(np.unique(label[label != IGNORE]))
    assert float(run(dice, wrong, label)) == pytest.approx(present / c, abs=1e-3)


def test_mixed_loss_is_the_weighted_sum():
    logits, label = make_batch()
    ce, dice = LOSSES.build({"type": "CrossEntropyLoss"}), LOSSES.build({"type": "DiceLoss"})
    mixed = LOSSES.build({"type": "MixedLoss", "coef": [0.7, 0.3],
                          "losses": [{"type": "CrossEntropyLoss"}, {"type": "DiceLoss"}]})
    expected = 0.7 * float(run(ce, logits, label)) + 0.3 * float(run(dice, logits, label))
    np.testing.assert_allclose(float(run(mixed, logits, label)), expected, rtol=1e-6)


def test_mixed_loss_rejects_bad_configs():
    with pytest.raises(ValueError, match="2 losses but 1 coefficients"):
        LOSSES.build({"type": "MixedLoss", "coef": [1.0],
                      "losses": [{"type": "CrossEntropyLoss"}, {"type": "DiceLoss"}]})
    with pytest.raises(KeyError, match="unknown loss type 'CrossEntropy'"):
        LOSSES.build({"type": "MixedLoss", "coef": [1.0], "losses": [{"type": "CrossEntropy"}]})


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "OhemCrossEntropyLoss", "DiceLoss"])
def test_forward_backward_is_fast_on_a_training_sized_batch(name):
    """Guards against pathological CPU kernels (e.g. paddle.max's backward in 3.3.1, ~1.7 s):
    each loss takes about 0.05-0.15 s here at [8, 11, 180, 240]."""
    rng = np.random.default_rng(0)
    logits = paddle.to_tensor(rng.normal(size=(8, 11, 180, 240)).astype("float32"),
                              stop_gradient=False)
    label = paddle.to_tensor(rng.integers(0, 11, (8, 180, 240)))
    loss = LOSSES.build({"type": name})
    loss(logits, label).backward()  # warm-up
    start = time.perf_counter()
    loss(logits, label).backward()
    assert time.perf_counter() - start < 1.0


# ---------------------------------------------------------------- every registered loss
# Arguments for the losses that need some; every other loss is built with its defaults.
LOSS_ARGS = {
    "MixedLoss": {"losses": [{"type": "CrossEntropyLoss"}, {"type": "DiceLoss"}],
                  "coef": [1.0, 0.5]},
}


def test_loss_args_name_registered_losses():
    assert set(LOSS_ARGS) <= set(LOSSES.names())


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_registered_loss_is_a_finite_scalar_that_a_gradient_step_lowers(name):
    loss = LOSSES.build({"type": name, **LOSS_ARGS.get(name, {})})
    logits, label = make_batch(n=2, c=4, h=8, w=10, seed=3)
    out, grad = run(loss, logits, label, grad=True)
    assert out.ndim == 0 and np.isfinite(float(out)) and float(out) > 0
    assert grad.shape == logits.shape and np.isfinite(grad).all() and np.abs(grad).max() > 0
    # the gradient points uphill: a small step against it lowers the loss
    stepped = float(run(loss, logits - 0.5 * grad / np.abs(grad).max(), label))
    assert stepped < float(out)
