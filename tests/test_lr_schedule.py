"""The registered lr schedules: warm-up, then a decay that ends exactly at its end value on
the run's last iteration (PaddleSeg decays over ``iters - warmup_iters``)."""
import pytest

from segq.config import Component
from segq.engine import optim  # noqa: F401  (registers the schedules)
from segq.registry import LR_SCHEDULERS


def lrs(spec: dict, iters: int) -> list[float]:
    """The lr used at each of the run's ``iters`` steps (stepped after each, as training does)."""
    sched = LR_SCHEDULERS.build(Component(**spec).to_dict(), decay_steps=iters)
    out = []
    for _ in range(iters):
        out.append(float(sched()))
        sched.step()
    out.append(float(sched()))  # after the last step: where the schedule ended
    return out


@pytest.mark.parametrize("warmup", [0, 50, 100])
@pytest.mark.parametrize("kind, end_key", [("PolynomialDecay", "end_lr"),
                                           ("CosineAnnealingDecay", "eta_min")])
def test_decay_starts_at_the_peak_after_warmup_and_ends_at_the_end_value(kind, end_key,
                                                                         warmup):
    iters, peak, end = 300, 0.05, 1e-4
    seq = lrs({"type": kind, "learning_rate": peak, end_key: end, "warmup_iters": warmup,
               "warmup_start_lr": 0.0}, iters)
    assert seq[warmup] == pytest.approx(peak)
    assert seq[-1] == pytest.approx(end, rel=1e-6)
    assert all(a >= b for a, b in zip(seq[warmup:], seq[warmup + 1:]))  # decays monotonically
    if warmup:
        assert seq[0] == pytest.approx(0.0) and seq[warmup // 2] < peak


def test_a_150_iteration_qat_schedule_ends_near_zero_not_at_a_third_of_its_peak():
    # the QAT base config: lr 0.001, 50 warm-up iterations, poly decay to 0
    seq = lrs({"type": "PolynomialDecay", "learning_rate": 0.001, "end_lr": 0.0, "power": 0.9,
               "warmup_iters": 50}, 150)
    assert seq[-2] < 0.02 * 0.001  # the last step's rate: (1/100)**0.9 of the peak
    assert seq[-1] == pytest.approx(0.0, abs=1e-12)
