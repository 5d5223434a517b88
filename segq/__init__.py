"""segq: segmentation-focused quantization on PaddlePaddle and PaddleSlim."""
