"""The run configuration: one dataclass per section of the TOML file, with defaults that work.

A config file names the dataset and, optionally, how to embed, fine-tune, project, index,
thumbnail, cluster and analyse it.
Relative paths in `[dataset]` are resolved against the config file's folder, and the resolved
config is saved into the store so that later stages run with no `--config` at all.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tomllib
import typing
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import Field
from pydantic.dataclasses import dataclass

from precompute.errors import ConfigError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")
TRAIN_MODES = ("linear", "head", "last", "full")
OPTIMIZERS = ("adamw", "sgd")
AUGMENTATIONS = ("random_resized_crop", "hflip", "color_jitter", "autocontrast", "equalize")
PROJECTION_METHODS = ("pca", "tsne", "umap", "pca_tsne", "pca_umap")  # precompute/stats/reducers.py

# Every setting's type and range, checked when a config is read (pydantic validates the
# dataclasses against these hints), so a wrong value costs one line, not minutes of work.
Count = Annotated[int, Field(ge=1)]
Workers = Annotated[int, Field(ge=0)]
Seed = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
ImageSide = Annotated[int, Field(ge=16, le=4096)]
Device = Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")]
Names = list[Annotated[str, Field(min_length=1)]]


@dataclass
class CategoryTreeConfig:
    """A manifest column holding a category path such as `["Home >> Decor >> Clocks"]`."""

    column: Annotated[str, Field(min_length=1)]
    separator: Annotated[str, Field(min_length=1)] = ">>"
    levels: Names = field(default_factory=list)  # names; default `<column>_1`, `<column>_2`, …


@dataclass
class DatasetConfig:
    """Where the images are and how their attributes are read."""

    root: str = ""  # image folder (tree) or the folder manifest paths are relative to
    manifest: str | None = None  # CSV or Parquet; without it the folder tree is walked
    path_column: str | None = None  # manifest column holding image paths (default "path")
    path_template: str | None = None  # e.g. "image_{imageid}_product_{productid}.jpg"
    # per folder level: an attribute name (the folder name is its value), or a regex whose
    # named groups are attributes, e.g. "^n\\d+-(?P<style>.+)$" reads style from "n0042-Baroque"
    levels: Names = field(default_factory=list)
    filename_pattern: str | None = None  # regex with named groups, matched on the file stem
    category_tree: CategoryTreeConfig | None = None
    ignore_columns: Names = field(default_factory=list)
    categorical: Names = field(default_factory=list)  # force these attributes categorical
    text: Names = field(default_factory=list)  # force these attributes to free text
    extensions: Names = field(default_factory=lambda: list(IMAGE_EXTENSIONS))
    max_pixels: Count = 89_478_485  # Pillow's decompression-bomb threshold
    crop_white_border: bool = False
    workers: Workers = 0  # validation processes; 0 = one per CPU core
    # images must resolve (symlinks followed) inside `root`; true accepts paths elsewhere
    allow_outside_root: bool = False


@dataclass
class ModelConfig:
    """The backbone (or backbones) whose feature spaces are mapped."""

    # a torchvision classification model name, or efficientnet_lite0/1/2
    backbone: Annotated[str, Field(min_length=1, pattern=r"^[^/]+$")] = "resnet50"
    # several backbones side by side in one store; when given, `backbone` is not used
    backbones: list[Annotated[str, Field(min_length=1, pattern=r"^[^/]+$")]] = field(
        default_factory=list)
    # DEFAULT, a torchvision weights name, a local .pth file, or none
    weights: Annotated[str, Field(min_length=1)] = "DEFAULT"
    image_size: ImageSide | None = None  # None = the weights' own preprocessing size

    def __post_init__(self) -> None:
        """A local weights file must exist before minutes of ingestion."""
        if self.weights.endswith((".pth", ".pt")) and Path(self.weights).is_absolute() and (
            not Path(self.weights).is_file()
        ):
            raise ConfigError(f"weights = {self.weights!r}: no such file; give the path of a "
                              "local .pth file, DEFAULT, a torchvision weights name or none")
        if len(set(self.backbones)) > 1 and self.weights not in ("DEFAULT", "none"):
            raise ConfigError(f"weights = {self.weights!r} fits one network, but backbones = "
                              f"{self.backbones} names several; use DEFAULT (each backbone's "
                              "own weights) or one backbone")

    def each_backbone(self) -> list[ModelConfig]:
        """One config per backbone to embed, each with a single `backbone`."""
        names = list(dict.fromkeys(self.backbones)) or [self.backbone]
        return [dataclasses.replace(self, backbone=name, backbones=[]) for name in names]


@dataclass
class EmbedConfig:
    """How embeddings are extracted."""

    # `penultimate`, `stages` (evenly spaced blocks of the backbone) or module names
    layers: Annotated[Names, Field(min_length=1)] = field(
        default_factory=lambda: ["stages", "penultimate"])
    stages: Count = 3  # how many blocks `stages` stands for
    batch_size: Count = 32
    # DataLoader worker processes decoding images; auto: none on the CPU, where the model's
    # threads already use every core (decoding beside them was 20% faster than in 2 workers on
    # 2 cores), one per core (at most 8) to feed a GPU
    workers: Workers | Literal["auto"] = "auto"
    device: Device = "auto"  # auto, cpu, cuda, cuda:1, mps
    dtype: Literal["float16", "float32"] = "float16"  # storage dtype of the embedding arrays
    # how often finished rows are recorded (most a kill can lose)
    progress_every_s: Annotated[float, Field(ge=0)] = 2.0


@dataclass
class TrainConfig:
    """Fine-tuning the backbone on one attribute; its feature space is then mapped too."""

    target: Annotated[str, Field(pattern=r"^[^/]*$")] = ""  # attribute to learn; "" = none
    # linear (logistic regression on the pretrained penultimate features), head (new head
    # only), last (last N stages + head), full (everything)
    mode: Literal[TRAIN_MODES] = "head"
    modes: list[Literal[TRAIN_MODES]] = field(default_factory=list)  # several; `mode` unused
    # the run's name in the store; "" = finetuned-<target>-<mode>
    name: Annotated[str, Field(pattern=r"^([A-Za-z0-9_][A-Za-z0-9_.-]*)?$")] = ""
    # 1: one train/validation/test split; k > 1: k stratified folds, one model each, and
    # out-of-fold predictions for every labelled image
    folds: Annotated[int, Field(ge=1, le=20)] = 1
    last_stages: Count = 2  # stages trained in mode "last"
    hidden: Workers = 256  # width of the new head's hidden layer; 0 = a single Linear
    # strong regularisation for a head on a few thousand images: against 0.2 and 1e-4, 43
    # artists 0.628 -> 0.645 over 5 folds, 11 styles 0.751 -> 0.752 (docs/results.md)
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.5
    epochs: Count = 30
    batch_size: Count = 32
    lr: Annotated[float, Field(gt=0, le=10)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 0.05  # AdamW's decoupled decay
    optimizer: Literal[OPTIMIZERS] = "adamw"  # adamw or sgd (momentum 0.9)
    patience: Workers = 5  # early stopping: epochs without a lower validation loss; 0 = never
    plateau_patience: Workers = 2  # epochs without improvement before the learning rate drops
    plateau_factor: Fraction = 0.3  # learning-rate multiplier on a plateau
    class_weights: bool = False  # weight the loss by inverse class frequency
    augment: list[Literal[AUGMENTATIONS]] = field(
        default_factory=lambda: ["random_resized_crop", "hflip"])
    val_fraction: Fraction = 0.15
    test_fraction: Fraction = 0.15
    # the quality stage's near-duplicate groups: "together" puts each group in one part (or
    # fold), so no test image has a copy in training; "anywhere" splits images one by one
    near_duplicates: Literal["together", "anywhere"] = "together"
    seed: Seed = 0
    image_size: ImageSide | None = None  # training resolution; None = the model's input size
    # DataLoader worker processes decoding and augmenting images; auto: none on the CPU (a
    # training epoch was 1.4x faster in the stage's process than with 2 workers on 2 cores),
    # one per core (at most 8) to feed a GPU
    workers: Workers | Literal["auto"] = "auto"
    device: Device = "auto"

    def __post_init__(self) -> None:
        """The held-out shares must leave images to train on."""
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                "val_fraction and test_fraction must leave some images for training (got "
                f"{self.val_fraction} and {self.test_fraction}; their sum must be below 1)"
            )
        deep = sorted((set(self.modes) or {self.mode}) & {"last", "full"})
        if self.folds > 1 and deep:
            raise ConfigError(
                f"folds = {self.folds} trains one model per fold in modes linear and head; mode "
                f"{' and '.join(deep)} trains on one split: set folds = 1, or leave "
                f"{' and '.join(deep)} out of modes")
        if self.name == "pretrained":
            raise ConfigError("name = 'pretrained' is the backbone's own weights; choose another "
                              "name for the training run")
        if self.name and len(set(self.modes)) > 1:
            raise ConfigError(f"name = {self.name!r} names one run, but modes = {self.modes} "
                              "makes several; leave name out to name each run by its mode")

    def each_mode(self) -> list[TrainConfig]:
        """One config per training run, each with a single `mode`."""
        modes = list(dict.fromkeys(self.modes)) or [self.mode]
        return [dataclasses.replace(self, mode=mode, modes=[]) for mode in modes]

    @property
    def run(self) -> str:
        """The run's name in the store (one mode): `finetuned-<target>-<mode>` by default."""
        return self.name or f"finetuned-{self.target}-{self.mode}"


MIN_FIT_SAMPLE = 10


@dataclass
class ProjectionConfig:
    """Which 2D projections are computed for every feature space."""

    methods: Annotated[list[Literal[PROJECTION_METHODS]], Field(min_length=1)] = field(
        default_factory=lambda: ["pca", "tsne", "umap", "pca_tsne"])
    seed: Seed = 0
    # per-method overrides
    params: dict[Literal[PROJECTION_METHODS], dict[str, Any]] = field(default_factory=dict)
    align: bool = True  # rotate/scale each layer's map onto its model's penultimate map
    # Above this many points each reducer is fitted on a seeded sample of this size and places
    # the rest with its own `transform`: UMAP and t-SNE at millions of points.
    fit_sample: Annotated[int, Field(ge=MIN_FIT_SAMPLE)] = 100_000


@dataclass
class IndexConfig:
    """Nearest-neighbour index settings."""

    # exact (flat) search below this many vectors, IVF above; None: as many as keep one query's
    # scan to 200,000 vectors of 512 floats (50,000 at 2048-d): precompute/stages/index.py
    exact_below: Workers | None = None
    # IVF probes enough lists to reach this recall@10
    target_recall: Annotated[float, Field(gt=0, le=1)] = 0.95
    max_lists: Count = 16_384  # IVF inverted lists (4·√n, at most this)


@dataclass
class ThumbnailConfig:
    """Thumbnails kept in the store for the explorer."""

    size: Annotated[int, Field(ge=16, le=1024)] = 128  # longest side in pixels
    quality: Annotated[int, Field(ge=1, le=95)] = 85  # JPEG quality


@dataclass
class ClusterConfig:
    """k-means per feature space, with k chosen by the mean silhouette."""

    k_min: Annotated[int, Field(ge=2)] = 2
    k_max: Annotated[int, Field(ge=2)] = 15
    # rows that choose k when the set is larger (silhouette is quadratic)
    sample: Annotated[int, Field(ge=MIN_FIT_SAMPLE)] = 5000
    seed: Seed = 0
    hdbscan: bool = False  # also HDBSCAN clusters (column `hdbscan`, -1 = noise)
    min_cluster_size: Annotated[int, Field(ge=2)] = 10  # HDBSCAN's smallest cluster

    def __post_init__(self) -> None:
        """The range of k must hold at least one k."""
        if self.k_max < self.k_min:
            raise ConfigError(f"k_max = {self.k_max} is below k_min = {self.k_min}")


@dataclass
class AnalysisConfig:
    """The separability matrix: how well each attribute is told apart in each feature space."""

    attributes: Names = field(default_factory=list)  # default: every categorical attribute
    # [attribute, given] pairs for conditional separability; None = every ordered pair of
    # analysed attributes where the first is not a function of the second
    conditional: list[Annotated[Names, Field(min_length=2, max_length=2)]] | None = None
    knn: Count = 10  # neighbours that vote
    folds: Annotated[int, Field(ge=2)] = 5  # stratified cross-validation folds of the probe
    shuffles: Count = 20  # label shuffles for the kNN and silhouette baselines
    probe_shuffles: Count = 3  # label shuffles for the probe baseline (each is a full probe)
    bootstrap: Count = 1000  # resamples of the images for the intervals
    min_class_size: Annotated[int, Field(ge=2)] = 5  # smaller classes (within a stratum) left out
    sample: Annotated[int, Field(ge=MIN_FIT_SAMPLE)] = 5000  # rows analysed in a larger set
    # "target/part", e.g. "style/test": every space scored on that part of a fine-tuning split;
    # "" = pretrained spaces on every image, fine-tuned ones on images their model never saw
    split: Annotated[str, Field(pattern=r"^([^/]+/(train|val|test))?$")] = ""
    # true: score a fine-tuned space on every image, the ones its model trained on included
    # (optimistic; by default only its test images, or with folds its out-of-fold embeddings)
    training_images: bool = False
    seed: Seed = 0


@dataclass
class QualityConfig:
    """Data-quality checks on one feature space: near-duplicates, split leaks, likely label
    mistakes and outliers (precompute/stages/quality.py)."""

    # backbone/run/layer; "" = the first backbone's pretrained/penultimate
    space: Annotated[str, Field(pattern=r"^([^/]+/[^/]+/[^/]+)?$")] = ""
    # cosine similarity from which two images count as near-duplicates (docs/results.md)
    duplicate_similarity: Annotated[float, Field(gt=0, le=1)] = 0.825
    # a similar pair counts as copies only if its pixels agree: the same layout in the same
    # colours (precompute/stats/pixels.py); false: the similarity alone decides
    duplicate_pixels: bool = True
    neighbours: Count = 10  # neighbours searched per image (duplicates, outliers, label votes)
    attributes: Names = field(default_factory=list)  # label checks; default: every categorical
    # out_of_fold: probabilities of a cross-validated linear probe; neighbours: their labels;
    # both: the mean of the two (the best on injected mistakes: docs/results.md)
    labels_from: Literal["both", "out_of_fold", "neighbours"] = "both"
    folds: Annotated[int, Field(ge=2)] = 5
    outlier_share: Annotated[float, Field(ge=0, lt=1)] = 0.01  # images flagged as outliers
    seed: Seed = 0


@dataclass
class RunConfig:
    """Everything one `precompute all` run needs."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
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
    """Read a TOML config file (or a store's saved `config.json`) and resolve its dataset paths
    against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'TOML'} "
                          f"({exc})") from exc
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
        return _validator(cls).validate_python(values)
    except pydantic.ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(exc, values)}") from None
    except ConfigError as exc:  # a combination of settings its section refuses
        raise ConfigError(f"{where}: {exc}") from None


@functools.cache
def _validator(cls: type) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(cls)


def _describe(error: pydantic.ValidationError, values: dict[str, Any]) -> str:
    """Each wrong setting as `name = value: what is allowed`, on one line; a setting of several
    allowed kinds (`int | "auto"`) is one clause naming each."""
    problems: dict[str, list[str]] = {}  # `name = value` → what each allowed kind says
    for item in error.errors(include_url=False):
        name = _setting_name(item["loc"], values)
        if item["type"] == "missing":
            problems.setdefault(f"{name} is required", [])
        else:
            allowed = problems.setdefault(f"{name} = {item['input']!r}", [])
            if item["msg"].lower() not in allowed:
                allowed.append(item["msg"].lower())
    return "; ".join(f"{setting}: {' or '.join(allowed)}" if allowed else setting
                     for setting, allowed in problems.items())


def _setting_name(location: tuple[str | int, ...], values: Any) -> str:
    """`name.key[0]` of an error's location in the given `values`. Parts that name nothing in
    them are the tags pydantic adds for each kind a union allows (`constrained-int`,
    `literal['auto']`), left out."""
    name = ""
    for part in location:
        if isinstance(values, dict) and part in values:
            name += f".{part}" if str(part).isidentifier() else f"[{str(part)!r}]"
        elif isinstance(values, list) and isinstance(part, int) and part < len(values):
            name += f"[{part}]"
        else:
            continue
        values = values[part]
    return name.lstrip(".")


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass inside a hint such as `CategoryTreeConfig | None`, if any."""
    candidates = typing.get_args(hint) or (hint,)
    return next((c for c in candidates if dataclasses.is_dataclass(c)), None)
