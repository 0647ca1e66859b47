"""Install dso_nas and its ``dso-nas`` command (runtime pins live in requirements*.txt)."""
from setuptools import find_packages, setup

setup(
    name="dso_nas",
    version="0.1.0",
    description="MXNet/Gluon reproduction of DSO-NAS: single-shot NAS via direct sparse optimization",
    packages=find_packages(include=["dso_nas", "dso_nas.*"]),
    python_requires=">=3.8",
    install_requires=["mxnet>=1.9.1", "numpy", "pyyaml", "matplotlib", "tqdm"],
    # `dso-nas export --format onnx`: MXNet 1.9.1's exporter needs onnx.mapping (gone in onnx 1.19);
    # onnxruntime (optional, checks and times the file) from 1.18.1 installs beside numpy 1.23
    extras_require={"onnx": ["onnx>=1.18,<1.19", "onnxruntime>=1.18.1"]},
    entry_points={"console_scripts": ["dso-nas=dso_nas.cli:entry"]},
)
