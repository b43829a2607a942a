"""Checks that can refuse a run's settings up front, before minutes of work are spent on them:
the backbone's name before anything runs, and the attributes the config names as soon as the
dataset has been ingested (before embedding)."""

from __future__ import annotations

from precompute.config import RunConfig
from precompute.store import Store

NETWORK_STAGES = ("embed", "train")


def check_before_stages(config: RunConfig, names: list[str]) -> None:
    """Refuse a backbone that no stage could load, when a stage about to run needs it."""
    if set(names) & set(NETWORK_STAGES):
        from precompute.nn.backbones import check_backbone_name

        for model in config.model.each_backbone():
            check_backbone_name(model.backbone)


def check_after_ingest(store: Store, config: RunConfig) -> None:
    """Refuse a training target or analysed attributes that the ingested dataset lacks."""
    from precompute.stages.analyse import analysed_attributes
    from precompute.stats.split import check_target

    kinds = store.images_meta()["attributes"]
    if config.train.target:
        check_target(kinds, config.train.target)
    analysed_attributes(config.analysis, kinds)
