"""Measurement and reporting: latency, mIoU and size of deployed models side by side (the
deployment benchmark, FP32 against INT8, the PTQ study, per-op profiles), peer quantizers'
rows, and the Markdown tables the docs are generated from."""
