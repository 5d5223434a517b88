import numpy as np
import pytest

from segq.metrics import EvalResult, confusion_matrix


def test_confusion_matrix_ignores_and_counts():
    label = np.array([[0, 1, 2], [255, 1, 1]])
    pred = np.array([[0, 2, 2], [0, 1, 0]])
    cm = confusion_matrix(pred, label, num_classes=3, ignore_index=255)
    expected = np.array([[1, 0, 0],
                         [1, 1, 1],
                         [0, 0, 1]])
    np.testing.assert_array_equal(cm, expected)


def test_metrics_against_hand_computation():
    cm = np.array([[50, 2, 3],
                   [4, 30, 6],
                   [1, 4, 20]])
    r = EvalResult.from_confusion(cm, num_images=2)
    # IoU_c = tp / (row + col - tp)
    iou = [50 / (55 + 55 - 50), 30 / (40 + 36 - 30), 20 / (25 + 29 - 20)]
    assert r.class_iou == pytest.approx(iou)
    assert r.miou == pytest.approx(np.mean(iou))
    total = 120
    acc = 100 / total
    assert r.acc == pytest.approx(acc)
    pe = (55 * 55 + 40 * 36 + 25 * 29) / total ** 2
    assert r.kappa == pytest.approx((acc - pe) / (1 - pe))
    assert r.class_acc == pytest.approx([50 / 55, 30 / 36, 20 / 29])
    assert r.num_images == 2


def test_absent_class_is_nan_and_left_out_of_mean(tmp_path):
    cm = np.array([[10, 0, 0], [0, 5, 0], [0, 0, 0]])
    r = EvalResult.from_confusion(cm, 1)
    assert np.isnan(r.class_iou[2]) and r.miou == pytest.approx(1.0)
    path = tmp_path / "r.json"
    r.write_json(path)
    import json
    d = json.loads(path.read_text())
    assert set(d) >= {"miou", "class_iou", "acc", "kappa", "num_images"}
    assert d["class_iou"][2] is None


def test_label_out_of_range_raises():
    with pytest.raises(ValueError, match=r"label values \[7\] outside \[0, 3\)"):
        confusion_matrix(np.zeros(3), np.array([0, 7, 255]), 3)
