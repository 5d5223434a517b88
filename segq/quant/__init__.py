"""Quantization: layer selection and the one PaddleSlim adapter (the ``quant:`` config
section is :mod:`segq.config.quant`)."""
