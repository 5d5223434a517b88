"""Median-frequency class weights (Eigen & Fergus, ICCV 2015) of a dataset:
weight_c = median_k(freq_k) / freq_c, where freq_c is class c's pixel count divided by the
pixel count of the images in which c appears (``tools/class_weights.py``)."""
from __future__ import annotations

import numpy as np

from .io import read_label


def median_frequency_weights(dataset) -> np.ndarray:
    """One weight per class of ``dataset`` (a segq dataset with ``file_list``)."""
    n = dataset.num_classes
    pixels = np.zeros(n, np.int64)
    image_pixels = np.zeros(n, np.int64)
    for _, label_path in dataset.file_list:
        label = dataset.remap_and_check(read_label(label_path), label_path)
        counts = np.bincount(label[label != dataset.ignore_index].ravel(), minlength=n)[:n]
        pixels += counts
        image_pixels += np.where(counts > 0, label.size, 0)
    freq = pixels / np.maximum(image_pixels, 1)
    return np.median(freq[freq > 0]) / np.where(freq > 0, freq, np.inf)
