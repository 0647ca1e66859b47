"""Install dso_nas and its ``dso-nas`` command (runtime pins live in requirements*.txt)."""
from setuptools import find_packages, setup

setup(
    name="dso_nas",
    version="0.1.0",
    description="MXNet/Gluon reproduction of DSO-NAS: single-shot NAS via direct sparse optimization",
    packages=find_packages(include=["dso_nas", "dso_nas.*"]),
    python_requires=">=3.8",
    install_requires=["mxnet>=1.9.1", "numpy", "pyyaml", "matplotlib", "tqdm"],
    entry_points={"console_scripts": ["dso-nas=dso_nas.cli:entry"]},
)
