"""Median-frequency class weights (Eigen & Fergus, ICCV 2015) from a config's train set:
python tools/class_weights.py --config C [--opts ...]

weight_c = median_k(freq_k) / freq_c, where freq_c is class c's pixel count divided by the
pixel count of the images in which c appears. Prints a YAML line for CrossEntropyLoss.weight.
"""
import argparse

import numpy as np

from segq.cli import set_default_threads

set_default_threads()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True)
    p.add_argument("--opts", nargs="+", default=[])
    args = p.parse_args(argv)
    from segq.builders import build_dataset
    from segq.config import load_config
    from segq.data.io import read_label

    cfg = load_config(args.config, args.opts)
    dataset = build_dataset(cfg.train_dataset, "train_dataset")
    n = dataset.num_classes
    pixels = np.zeros(n, np.int64)
    image_pixels = np.zeros(n, np.int64)
    for _, label_path in dataset.file_list:
        label = dataset.remap_and_check(read_label(label_path), label_path)
        counts = np.bincount(label[label != dataset.ignore_index].ravel(), minlength=n)[:n]
        pixels += counts
        image_pixels += np.where(counts > 0, label.size, 0)
    freq = pixels / np.maximum(image_pixels, 1)
    weights = np.median(freq[freq > 0]) / np.where(freq > 0, freq, np.inf)
    print("weight: [" + ", ".join(f"{w:.4f}" for w in weights) + "]")


if __name__ == "__main__":
    raise SystemExit(main())
