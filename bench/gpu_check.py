"""The GPU check: every CUDA path of the product run once on a lent GPU machine, with figures.

    bash bench/gpu_check.sh --prepare      # here: fetch the wheels the GPU machine lacks (.whl/)
    bash bench/gpu_check.sh                # there: install them, run every step (< 8 min)
    bash bench/gpu_check.sh --dry-run      # a machine without a GPU: small sizes, CPU fallbacks

Steps, each timed and each reported as done, skipped (with the reason) or failed:
- tests: the suite's tests of training, torchrun, layer taps and the index, on the GPU;
- embed: the embed stage end to end against the model's forward pass alone, for the offline
  EfficientNet-Lite0 and a ResNet50 (its architecture without weights: throughput needs none),
  on the sample paintings repeated (goal: end to end ≥ 90% of model-only on the GPU);
- full: `full` fine-tuning with mixed precision on the same images (images/s, accuracy);
- torchrun: the embed stage in two processes with the GPU present (on one card, gloo);
- knn: nearest neighbours of 1M × 2048 on the GPU through FAISS GPU where it is installed,
  else through torch (exact inner products and top-k), ms per query and recall@10;
- umap: UMAP of 1M × 50 through cuML where it is installed (the CPU path stays the default).

Rows go into bench/results.json (and, on the device machine, a copy into $OUT). A dry run
exits 0 when every step ran its CPU fallback or skipped with a message; a real run exits 1
when any step failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench.measures import Row, row  # noqa: E402

PAINTINGS = REPO / "sample_data" / "wikiart"
GPU_TESTS = ["tests/test_train.py", "tests/test_torchrun.py", "tests/test_layers.py",
             "tests/test_index.py"]


class Skip(Exception):
    """A step that cannot run here, with the reason."""


@dataclass
class Sizes:
    """How much work each step does: the GPU's sizes, or a dry run's."""

    copies: int  # times the sample paintings are repeated for embedding and training
    rounds: int
    batch_size: int
    workers: int
    epochs: int
    knn_rows: int
    knn_dim: int
    umap_rows: int

    @classmethod
    def for_run(cls, dry_run: bool) -> Sizes:
        if dry_run:
            return cls(copies=1, rounds=1, batch_size=16, workers=2, epochs=1, knn_rows=20_000,
                       knn_dim=256, umap_rows=2_000)
        return cls(copies=8, rounds=2, batch_size=128, workers=max(2, (os.cpu_count() or 4) - 2),
                   epochs=2, knn_rows=1_000_000, knn_dim=2048, umap_rows=1_000_000)


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


# ----------------------------------------------------------------------------- the images
def painting_tree(folder: Path, copies: int, limit: int | None = None) -> Path:
    """The sample paintings `copies` times over as hard links (`Style/c<k>_file.jpg`), or the
    first `limit` of them once."""
    files = sorted(PAINTINGS.rglob("*.jpg"))
    if limit:
        files = files[::max(1, len(files) // limit)][:limit]
    for copy in range(copies):
        for file in files:
            target = folder / file.parent.name / f"c{copy}_{file.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(file, target)
            except OSError:  # another file system
                shutil.copy2(file, target)
    return folder


def write_config(path: Path, images: Path, sizes: Sizes, train: str = "") -> Path:
    path.write_text(f"""
[dataset]
root = "{images.as_posix()}"
levels = ["style"]

[model]
backbone = "efficientnet_lite0"

[embed]
layers = ["penultimate"]
batch_size = {sizes.batch_size}
workers = {sizes.workers}
progress_every_s = 0
{train}
""", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- the steps
def step_tests(sizes: Sizes, dry_run: bool, work: Path) -> list[Row]:
    """The GPU-relevant tests; a dry run only collects them (CI runs them on the CPU)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *GPU_TESTS]
    if dry_run:
        command.append("--collect-only")
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    last = (done.stdout.strip().splitlines() or [""])[-1]
    print(last)
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-2000:])
        raise RuntimeError(f"pytest exited {done.returncode}: {last}")
    count = int(last.split()[0]) if last.split() and last.split()[0].isdigit() else 0
    return [row("GPU check: GPU-relevant tests " + ("collected" if dry_run else "passed"),
                count, None, count, "tests")]


def step_embed(sizes: Sizes, dry_run: bool, work: Path) -> list[Row]:
    """End to end against model-only, for the offline backbone and a heavier architecture."""
    from bench.embedding import embedding_measures

    images = painting_tree(work / "embed", sizes.copies, limit=48 if dry_run else None)
    goal = 0.8 if dry_run else 0.9
    rows = embedding_measures("efficientnet_lite0", sizes.batch_size, sizes.workers,
                              sizes.rounds, images, goal=goal)
    if not dry_run:
        rows += embedding_measures("resnet50", sizes.batch_size, sizes.workers, sizes.rounds,
                                   images, weights="none", goal=goal)
    return rows


def step_full(sizes: Sizes, dry_run: bool, work: Path) -> list[Row]:
    """`full` fine-tuning of EfficientNet-Lite0 on style, mixed precision on CUDA."""
    from precompute.cli import main
    from precompute.compare import runs_table
    from precompute.store import Store

    images = painting_tree(work / "full", sizes.copies, limit=48 if dry_run else None)
    config = write_config(work / "full.toml", images, sizes, train=f"""
[train]
target = "style"
mode = "full"
epochs = {sizes.epochs}
patience = 0
batch_size = {min(sizes.batch_size, 64)}
workers = {sizes.workers}
""")
    store = work / "full-store"
    for stage in ("ingest", "train"):
        if main(["-q", stage, "--config", str(config), "--store", str(store)]) != 0:
            raise RuntimeError(f"precompute {stage} failed")
    run = runs_table(Store.open(store)).iloc[0]
    where = f"full, {run['device']}"
    return [
        row(f"GPU check: fine-tuning images/s ({where})", int(run["images"]), None,
            run["images_per_s"], "img/s"),
        row(f"GPU check: fine-tuned test accuracy after {sizes.epochs} epochs ({where})",
            int(run["images"]), None, run["accuracy"], "share"),
    ]


def step_torchrun(sizes: Sizes, dry_run: bool, work: Path) -> list[Row]:
    """The embed stage in two torchrun processes, each on the GPU of its local rank."""
    images = painting_tree(work / "torchrun", sizes.copies, limit=48 if dry_run else None)
    config = write_config(work / "torchrun.toml", images, sizes)
    store = work / "torchrun-store"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "precompute.cli", "-q", "ingest", "--config",
                    str(config), "--store", str(store)], check=True, env=environment)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node", "2", "-m", "precompute.cli", "-q", "embed", "--config",
                    str(config), "--store", str(store)], check=True, env=environment,
                   timeout=300, cwd=REPO)
    seconds = time.perf_counter() - began
    count = sum(1 for _ in images.rglob("*.jpg"))
    device = "cuda" if has_gpu() else "cpu"
    return [row(f"GPU check: torchrun embed, 2 processes ({device}, start included)", count,
                None, count / seconds, "img/s")]


def step_knn(sizes: Sizes, dry_run: bool, work: Path) -> list[Row]:
    """k=10 neighbours of clustered unit vectors: FAISS GPU where installed, else torch."""
    import faiss
    import torch

    from precompute.stages.index import without_own

    vectors = clustered_unit_vectors(sizes.knn_rows, sizes.knn_dim)
    queries = np.random.default_rng(2).choice(len(vectors), 1000, replace=False)
    device = torch.device("cuda" if has_gpu() else "cpu")
    base = torch.from_numpy(vectors).to(device)
    exact = torch_top_k(base, base[torch.from_numpy(queries).to(device)], 11, torch.float32)
    exact = without_own(exact, queries)
    rows = []
    if device.type == "cuda" and faiss.get_num_gpus() > 0:
        resources = faiss.StandardGpuResources()
        index = faiss.GpuIndexFlatIP(resources, sizes.knn_dim)
        index.add(vectors)
        rows += knn_rows("FAISS GPU flat", lambda q: index.search(vectors[q], 11)[1], queries,
                         exact, sizes)
    else:
        print("FAISS sees no GPU (faiss-gpu is not installed here, or no GPU): torch instead")
    half = torch.float16 if device.type == "cuda" else torch.float32
    base_half = base.to(half)

    def torch_search(q: np.ndarray) -> np.ndarray:
        return torch_top_k(base_half, base_half[torch.from_numpy(q).to(device)], 11, half)

    rows += knn_rows(f"torch {str(half).removeprefix('torch.')} on {device.type}", torch_search,
                     queries, exact, sizes)
    return rows


def clustered_unit_vectors(rows: int, dim: int) -> np.ndarray:
    """`rows` unit vectors around 1,000 random centres (float32)."""
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    vectors = np.empty((rows, dim), dtype=np.float32)
    for start in range(0, rows, 100_000):
        part = slice(start, min(rows, start + 100_000))
        count = part.stop - part.start
        vectors[part] = centres[rng.integers(0, 1000, count)] + rng.standard_normal(
            (count, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def torch_top_k(base, queries, k: int, dtype) -> np.ndarray:
    """The `k` largest inner products of each query with `base`, as row numbers."""
    import torch

    with torch.inference_mode():
        scores = queries.to(dtype) @ base.to(dtype).T
        found = torch.topk(scores.float(), k, dim=1).indices
        if found.is_cuda:
            torch.cuda.synchronize()
    return found.cpu().numpy()


def knn_rows(name: str, search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray,
             exact: np.ndarray, sizes: Sizes) -> list[Row]:
    """ms for one query alone, ms per query in a batch of 1,000, and recall@10."""
    from precompute.stages.index import recall_at, without_own

    search(queries[:10])  # warm-up (kernels, memory pools)
    single = []
    for query in queries[:50]:
        began = time.perf_counter()
        search(np.array([query]))
        single.append((time.perf_counter() - began) * 1000)
    began = time.perf_counter()
    found = without_own(np.asarray(search(queries)), queries)
    batch = (time.perf_counter() - began) * 1000 / len(queries)
    n, dim = sizes.knn_rows, sizes.knn_dim
    return [
        row(f"GPU check: kNN k=10, one query ({name})", n, dim, statistics.median(single), "ms"),
        row(f"GPU check: kNN k=10, per query in a batch of 1,000 ({name})", n, dim, batch, "ms"),
        row(f"GPU check: kNN recall@10 vs exact ({name})", n, dim, recall_at(found, exact),
            "ratio", 0.95, lower_is_better=False),
    ]


def step_umap(sizes: Sizes, dry_run: bool, work: Path) -> list[Row]:
    """UMAP on the GPU through cuML, where it is installed."""
    try:
        from cuml.manifold import UMAP
    except ImportError as exc:
        raise Skip(f"cuML is not installed ({exc.name}); its wheels are too large to carry "
                   "to an offline GPU machine, and the CPU path (umap-learn) is the default") \
            from None
    if not has_gpu():
        raise Skip("no GPU")
    data = clustered_unit_vectors(sizes.umap_rows, 50)
    began = time.perf_counter()
    UMAP(n_components=2, random_state=0).fit_transform(data)
    return [row("GPU check: UMAP → 2D through cuML", sizes.umap_rows, 50,
                time.perf_counter() - began, "s", 60)]


STEPS: dict[str, Callable[[Sizes, bool, Path], list[Row]]] = {
    "tests": step_tests, "embed": step_embed, "full": step_full, "torchrun": step_torchrun,
    "knn": step_knn, "umap": step_umap,
}


# ----------------------------------------------------------------------------- the run
def environment_line() -> str:
    import torch

    gpu = (f"{torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU(s)"
           if torch.cuda.is_available() else "no GPU")
    return (f"torch {torch.__version__}, {gpu}, {os.cpu_count()} CPU cores, "
            f"Python {sys.version.split()[0]}")


def run_steps(names: list[str], dry_run: bool) -> tuple[list[Row], dict[str, str]]:
    """Each named step in turn; returns the rows and each step's outcome. A real run saves
    each step's rows as it ends, so a run stopped at its time limit keeps what it measured."""
    sizes = Sizes.for_run(dry_run)
    rows: list[Row] = []
    outcomes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        for name in names:
            began = time.perf_counter()
            print(f"\n== {name}", flush=True)
            try:
                found = STEPS[name](sizes, dry_run, Path(folder))
                outcome = f"done in {time.perf_counter() - began:.0f} s"
                rows += found
                if not dry_run:  # a dry run's small CPU figures are not kept
                    save(found)
                for result in found:
                    print(f"  {result['measure']} (n={result['n']}): {result['value']} "
                          f"{result['unit']}" + ("" if result["met"] is None else
                                                 f" goal {result['goal']}: "
                                                 f"{'met' if result['met'] else 'NOT met'}"))
            except Skip as reason:
                outcome = f"skipped: {reason}"
            except Exception as exc:  # noqa: BLE001 - one step's failure must not stop the rest
                traceback.print_exc()
                outcome = f"FAILED: {type(exc).__name__}: {exc}"
            outcomes[name] = outcome
            print(f"== {name}: {outcome}", flush=True)
    return rows, outcomes


def save(rows: list[Row]) -> None:
    """Into bench/results.json and, on the device machine, a copy into $OUT (whose files come
    back from there)."""
    from bench.run import RESULTS, save_rows

    save_rows(rows)
    if os.environ.get("OUT"):
        shutil.copy(RESULTS, Path(os.environ["OUT"]) / "results.json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true",
                        help="small sizes; every step runs its CPU fallback or skips")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated, in order")
    args = parser.parse_args()
    names = [name for name in args.steps.split(",") if name]
    unknown = sorted(set(names) - set(STEPS))
    if unknown:
        print(f"gpu_check: unknown step(s) {', '.join(unknown)}; the steps are "
              f"{', '.join(STEPS)}", file=sys.stderr)
        return 2
    print(environment_line(), flush=True)
    if not args.dry_run and not has_gpu():
        print("gpu_check: no GPU here; run with --dry-run on a machine without one",
              file=sys.stderr)
        return 2
    rows, outcomes = run_steps(names, args.dry_run)
    print("\n" + "\n".join(f"{name:<9} {outcome}" for name, outcome in outcomes.items()))
    return 1 if any(o.startswith("FAILED") for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
