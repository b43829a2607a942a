"""Checks that can refuse a run's settings up front, before minutes of work are spent on them:
the backbone's name before anything runs, and the attributes the config names as soon as the
dataset has been ingested (before embedding)."""

from __future__ import annotations

from precompute.config import RunConfig
from precompute.errors import ConfigError
from precompute.store import Store

NETWORK_STAGES = ("embed", "train")


def check_before_stages(config: RunConfig, names: list[str]) -> None:
    """Refuse a backbone that no stage could load, when a stage about to run needs it."""
    if not set(names) & set(NETWORK_STAGES):
        return
    from precompute.backbones import available_backbones

    backbones = available_backbones()
    if config.model.backbone not in backbones:
        raise ConfigError(
            f"[model] backbone = {config.model.backbone!r} is unknown; use a torchvision "
            f"classification model (e.g. resnet50, efficientnet_b0, vgg16, convnext_tiny) or "
            f"an offline one ({', '.join(b for b in backbones if 'lite' in b)})"
        )


def check_after_ingest(store: Store, config: RunConfig) -> None:
    """Refuse a training target or analysed attributes that the ingested dataset lacks."""
    from precompute.analyse import analysed_attributes
    from precompute.split import check_target

    kinds = store.images_meta()["attributes"]
    if config.train.target:
        check_target(kinds, config.train.target)
    analysed_attributes(config.analysis, kinds)
