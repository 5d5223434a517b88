from setuptools import find_packages, setup

setup(
    name="segq",
    version="0.1.0",
    description="Segmentation-focused quantization (QAT, PTQ, INT8 deployment) on PaddlePaddle",
    packages=find_packages(include=["segq", "segq.*"]),
    python_requires=">=3.11",
    # exact pins live in requirements.txt and are installed in one pip call (see README)
    install_requires=["paddlepaddle", "paddleslim", "numpy<2", "opencv-python", "pyyaml",
                      "pydantic>=2", "tqdm", "visualdl"],
)
