"""Activation ranges per sublayer, train crops against eval frames (segq.quant.ranges)."""
import paddle
import pytest

from segq.quant.ranges import output_abs_max, range_rows, ranges_markdown


class Net(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.a = paddle.nn.Conv2D(1, 1, 1, bias_attr=False)
        self.b = paddle.nn.ReLU()
        self.a.weight.set_value(paddle.full([1, 1, 1, 1], 2.0))

    def forward(self, x):
        return [self.b(self.a(x))]


def test_ranges_are_per_sublayer_and_sorted_by_ratio():
    net = Net()
    ones = paddle.ones([1, 1, 4, 4])
    signed = paddle.to_tensor([[[[-3.0, 1.0]]]])
    maxima = output_abs_max(net, [ones], ["*"])
    assert maxima == {"a": 2.0, "b": 2.0}
    rows = range_rows(net, [ones], [signed * 2], ["*"])
    # conv output -12 / 4, relu output 4 / 2: the conv's range grew more
    assert [(r.layer, r.train_max, r.eval_max, r.ratio) for r in rows] == [
        ("a", 2.0, 12.0, 6.0), ("b", 2.0, 4.0, 2.0)]
    assert ranges_markdown(rows, top=1).splitlines()[-1] == "| a | 2.00 | 12.00 | 6.00 |"


def test_patterns_select_layers_and_a_pattern_matching_nothing_fails():
    assert list(output_abs_max(Net(), [paddle.ones([1, 1, 2, 2])], ["b"])) == ["b"]
    with pytest.raises(ValueError, match=r"no sublayer of Net matches \['head.\*'\]"):
        output_abs_max(Net(), [paddle.ones([1, 1, 2, 2])], ["head.*"])


def test_cli_prints_the_table_for_a_config(capsys):
    from tools.activation_ranges import main

    main(["--config", "configs/demo/bisenetv2_synthetic_96x128_300.yml", "--layers", "head.*",
          "--train_batches", "1", "--val_images", "1", "--top", "3"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| sublayer |") and len(lines) == 5
    assert all(line.startswith("| head.") for line in lines[2:])
