"""What the `pipeline` extra adds to the viewer install: torch, torchvision and the projection
and learning libraries, which building a store and the app's Query and Grad-CAM need. A store
is served without them (pyproject.toml, docs/install.md)."""

from __future__ import annotations

import importlib.util

PIPELINE_INSTALL = "pip install 'feature-space-explorer[pipeline]'"
PIPELINE_MODULES = ("torch", "torchvision", "sklearn", "umap", "openTSNE", "tqdm",
                    "efficientnet_lite_pytorch")


def pipeline_missing() -> str | None:
    """The first of the pipeline's modules that is not installed, or None when all are."""
    return next((name for name in PIPELINE_MODULES if importlib.util.find_spec(name) is None),
                None)


def is_pipeline_module(error: ModuleNotFoundError) -> bool:
    """Whether an import failed for want of the pipeline extra."""
    return (error.name or "").partition(".")[0] in PIPELINE_MODULES


def needs_pipeline(what: str, module: str) -> str:
    """One line saying that `what` needs the pipeline extra, which module is missing, and the
    command that installs it."""
    return f"{what} needs the pipeline extra ({module} is not installed): {PIPELINE_INSTALL}"
