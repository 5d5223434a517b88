"""Median-frequency class weights (Eigen & Fergus, ICCV 2015) from a config's train set:
python tools/class_weights.py --config C [--opts ...]

weight_c = median_k(freq_k) / freq_c, where freq_c is class c's pixel count divided by the
pixel count of the images in which c appears. Prints a YAML line for CrossEntropyLoss.weight.
"""
from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    args = build_parser(__doc__, ()).parse_args(argv)
    from segq.builders import build_dataset
    from segq.config import load_config
    from segq.data.class_weights import median_frequency_weights

    cfg = load_config(args.config, args.opts)
    weights = median_frequency_weights(build_dataset(cfg.train_dataset, "train_dataset"))
    print("weight: [" + ", ".join(f"{w:.4f}" for w in weights) + "]")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
