"""segq's vectorized KL threshold search picks exactly the threshold Paddle's does."""
import numpy as np
import pytest
from paddle.static.quantization.cal_kl_threshold import cal_kl_threshold as paddle_kl

from segq.quant.kl_threshold import cal_kl_threshold


def histograms():
    rng = np.random.default_rng(0)
    for t in range(12):
        x = np.abs(rng.standard_normal(50_000) * rng.uniform(0.5, 3)) ** rng.uniform(0.5, 2)
        if t % 3 == 0:
            x[rng.random(x.size) < 0.5] = 0  # a ReLU's output: half the mass in bin 0
        hist, edges = np.histogram(x, bins=2048)
        if t % 4 == 1:
            hist[1500:1600] = 0  # empty candidates, which both searches skip
        yield hist, float(edges[1] - edges[0])


# Paddle's reference takes about a second per histogram: 8-bit on all, 6-bit on a few
@pytest.mark.parametrize("bits, count", [(8, 12), (6, 3)])
def test_same_threshold_as_paddle(bits, count):
    for hist, width in list(histograms())[:count]:
        assert cal_kl_threshold(hist, width, bits) == paddle_kl(hist, width, bits)


def test_all_candidates_empty_falls_back_like_paddle():
    hist = np.zeros(2048)
    hist[:300] = 5.0
    assert cal_kl_threshold(hist, 0.01, 8) == paddle_kl(hist, 0.01, 8)
