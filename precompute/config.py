"""The run configuration: one dataclass per section of the TOML file, with defaults that work.

A config file names the dataset and, optionally, how to embed, fine-tune, project, index,
thumbnail, cluster and analyse it.
Relative paths in `[dataset]` are resolved against the config file's folder, and the resolved
config is saved into the store so that later stages run with no `--config` at all.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from precompute.errors import ConfigError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")
TRAIN_MODES = ("head", "last", "full")
OPTIMIZERS = ("adamw", "sgd")
AUGMENTATIONS = ("random_resized_crop", "hflip", "color_jitter", "autocontrast", "equalize")


@dataclass
class CategoryTreeConfig:
    """A manifest column holding a category path such as `["Home >> Decor >> Clocks"]`."""

    column: str
    separator: str = ">>"
    levels: list[str] = field(default_factory=list)  # names; default `<column>_1`, `<column>_2`, …


@dataclass
class DatasetConfig:
    """Where the images are and how their attributes are read."""

    root: str = ""  # image folder (tree) or the folder manifest paths are relative to
    manifest: str | None = None  # CSV or Parquet; without it the folder tree is walked
    path_column: str | None = None  # manifest column holding image paths (default "path")
    path_template: str | None = None  # e.g. "image_{imageid}_product_{productid}.jpg"
    levels: list[str] = field(default_factory=list)  # attribute name per folder level (tree)
    filename_pattern: str | None = None  # regex with named groups, matched on the file stem
    category_tree: CategoryTreeConfig | None = None
    ignore_columns: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)  # force these attributes categorical
    text: list[str] = field(default_factory=list)  # force these attributes to free text
    extensions: list[str] = field(default_factory=lambda: list(IMAGE_EXTENSIONS))
    max_pixels: int = 89_478_485  # Pillow's decompression-bomb threshold
    crop_white_border: bool = False
    workers: int = 0  # validation processes; 0 = one per CPU core


@dataclass
class ModelConfig:
    """The backbone whose feature space is mapped."""

    backbone: str = "resnet50"  # a torchvision classification model name, or efficientnet_lite0
    weights: str = "DEFAULT"  # DEFAULT, a torchvision weights name, a local .pth file, or none
    image_size: int | None = None  # None = the weights' own preprocessing size


@dataclass
class EmbedConfig:
    """How embeddings are extracted."""

    # `penultimate`, `stages` (evenly spaced blocks of the backbone) or module names
    layers: list[str] = field(default_factory=lambda: ["stages", "penultimate"])
    stages: int = 3  # how many blocks `stages` stands for
    batch_size: int = 32
    workers: int = 2  # DataLoader worker processes
    device: str = "auto"  # auto, cpu, cuda, cuda:1, mps
    dtype: str = "float16"  # storage dtype of the embedding arrays
    progress_every_s: float = 2.0  # how often finished rows are recorded (most a kill can lose)


@dataclass
class TrainConfig:
    """Fine-tuning the backbone on one attribute; its feature space is then mapped too."""

    target: str = ""  # attribute to learn; empty = no training
    mode: str = "head"  # head (new head only), last (last N stages + head), full (everything)
    last_stages: int = 2  # stages trained in mode "last"
    hidden: int = 256  # width of the new head's hidden layer; 0 = a single Linear
    dropout: float = 0.2
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # adamw or sgd (momentum 0.9)
    patience: int = 5  # early stopping: epochs without a lower validation loss; 0 = never stop
    plateau_patience: int = 2  # epochs without improvement before the learning rate drops
    plateau_factor: float = 0.3  # learning-rate multiplier on a plateau
    class_weights: bool = False  # weight the loss by inverse class frequency
    augment: list[str] = field(default_factory=lambda: ["random_resized_crop", "hflip"])
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    image_size: int | None = None  # training resolution; None = the model's input size
    workers: int = 0  # DataLoader worker processes; 0 = one per CPU core, at most 8
    device: str = "auto"

    def __post_init__(self) -> None:
        """Refuse settings that cannot work before any stage runs."""
        problems = []
        if self.mode not in TRAIN_MODES:
            problems.append(f"mode {self.mode!r} is not one of {', '.join(TRAIN_MODES)}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(
                f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}"
            )
        unknown = [name for name in self.augment if name not in AUGMENTATIONS]
        if unknown:
            problems.append(
                f"augment {', '.join(unknown)} unknown; choose from {', '.join(AUGMENTATIONS)}"
            )
        if not (0 < self.val_fraction < 1 and 0 < self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            problems.append(
                "val_fraction and test_fraction must each lie between 0 and 1 and leave some "
                f"images for training (got {self.val_fraction} and {self.test_fraction})"
            )
        for name in ("epochs", "batch_size", "last_stages"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if "/" in self.target:
            problems.append(f"target {self.target!r} may not contain '/'")
        if problems:
            raise ConfigError("; ".join(problems))


MIN_FIT_SAMPLE = 10


@dataclass
class ProjectionConfig:
    """Which 2D projections are computed for every feature space."""

    methods: list[str] = field(default_factory=lambda: ["pca", "tsne", "umap", "pca_tsne"])
    seed: int = 0
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-method overrides
    align: bool = True  # rotate/scale each layer's map onto its model's penultimate map
    # Above this many points each reducer is fitted on a seeded sample of this size and places
    # the rest with its own `transform`: UMAP and t-SNE at millions of points.
    fit_sample: int = 100_000

    def __post_init__(self) -> None:
        if self.fit_sample < MIN_FIT_SAMPLE:
            raise ConfigError(f"[projection] fit_sample = {self.fit_sample}: fit on at least "
                              f"{MIN_FIT_SAMPLE} points")


@dataclass
class IndexConfig:
    """Nearest-neighbour index settings."""

    # exact (flat) search below this many vectors, IVF above; None: as many as keep one query's
    # scan to 200,000 vectors of 512 floats (50,000 at 2048-d): precompute/index.py
    exact_below: int | None = None
    target_recall: float = 0.95  # IVF probes enough lists to reach this recall@10
    max_lists: int = 16_384  # IVF inverted lists (4·√n, at most this)


@dataclass
class ThumbnailConfig:
    """Thumbnails kept in the store for the explorer."""

    size: int = 128  # longest side in pixels
    quality: int = 85  # JPEG quality


@dataclass
class ClusterConfig:
    """k-means per feature space, with k chosen by the mean silhouette."""

    k_min: int = 2
    k_max: int = 15
    sample: int = 5000  # rows that choose k when the set is larger (silhouette is quadratic)
    seed: int = 0
    hdbscan: bool = False  # also HDBSCAN clusters (column `hdbscan`, -1 = noise)
    min_cluster_size: int = 10  # HDBSCAN's smallest cluster


@dataclass
class AnalysisConfig:
    """The separability matrix: how well each attribute is told apart in each feature space."""

    attributes: list[str] = field(default_factory=list)  # default: every categorical attribute
    # [attribute, given] pairs for conditional separability; None = every ordered pair of
    # analysed attributes where the first is not a function of the second
    conditional: list[list[str]] | None = None
    knn: int = 10  # neighbours that vote
    folds: int = 5  # stratified cross-validation folds of the linear probe
    shuffles: int = 20  # label shuffles for the kNN and silhouette baselines
    probe_shuffles: int = 3  # label shuffles for the probe baseline (each is a full probe)
    bootstrap: int = 1000  # resamples of the images for the intervals
    min_class_size: int = 5  # classes with fewer rows (within a stratum) are left out
    sample: int = 5000  # rows analysed when the set is larger
    # "target/part", e.g. "style/test": only the images in that part of the fine-tuning split,
    # so a fine-tuned model is not scored on the images it was trained on; "" = every image
    split: str = ""
    seed: int = 0


@dataclass
class RunConfig:
    """Everything one `precompute all` run needs."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    thumbnails: ThumbnailConfig = field(default_factory=ThumbnailConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, as saved in the store."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> RunConfig:
        """Build from a parsed TOML/JSON mapping; unknown keys are errors naming `source`."""
        return _build(cls, data, source)


def load_config(path: str | Path) -> RunConfig:
    """Read a TOML config file and resolve its dataset paths against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    config = RunConfig.from_dict(data, source=str(path))
    return _resolve_paths(config, path.parent.resolve())


def _resolve_paths(config: RunConfig, base: Path) -> RunConfig:
    dataset = config.dataset
    root = (base / dataset.root).resolve() if dataset.root else base
    manifest = str((base / dataset.manifest).resolve()) if dataset.manifest else None
    weights = config.model.weights
    if weights.endswith((".pth", ".pt")):
        weights = str((base / weights).resolve())
    return dataclasses.replace(
        config,
        dataset=dataclasses.replace(dataset, root=str(root), manifest=manifest),
        model=dataclasses.replace(config.model, weights=weights),
    )


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table of settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
    values = {}
    for key, value in data.items():
        nested = _dataclass_in(hints[key])
        values[key] = _build(nested, value, f"{where} [{key}]") if nested and value else value
    try:
        return cls(**values)
    except (TypeError, ConfigError) as exc:  # a missing setting, or one its section refuses
        raise ConfigError(f"{where}: {exc}") from exc


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass inside a hint such as `CategoryTreeConfig | None`, if any."""
    candidates = typing.get_args(hint) or (hint,)
    return next((c for c in candidates if dataclasses.is_dataclass(c)), None)
