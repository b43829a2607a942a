"""2D reducers behind one interface: a method name maps to a factory of a scikit-learn estimator.

Every factory takes the number of samples (to keep perplexity and neighbourhood sizes valid on
small sets), a seed and the user's overrides, and returns an object with `fit_transform` and
`transform`. Adding a method is one entry in REDUCERS.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from typing import Any

from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline

from precompute.errors import ConfigError

PCA_COMPONENTS = 50  # the PCA step of pca_tsne and pca_umap


def make_pca(n_samples: int, seed: int, **params: Any) -> PCA:
    """Principal components: fast, linear, keeps global structure."""
    return PCA(n_components=2, random_state=seed, **params)


def make_tsne(n_samples: int, seed: int, **params: Any):
    """openTSNE's t-SNE (FFT-accelerated), which can also place new points on a fitted map."""
    from openTSNE.sklearn import TSNE

    settings = {"perplexity": min(30.0, max(2.0, (n_samples - 1) / 3)), "n_jobs": -1}
    return TSNE(n_components=2, random_state=seed, **(settings | params))


def make_umap(n_samples: int, seed: int, **params: Any):
    """umap-learn's UMAP with cosine distances."""
    import umap

    cache_umap_kernels()
    settings = {"n_neighbors": min(15, max(2, n_samples - 1)), "metric": "cosine", "n_jobs": 1}
    return umap.UMAP(n_components=2, random_state=seed, **(settings | params))


@functools.cache
def cache_umap_kernels() -> None:
    """Keep umap-learn's compiled numba kernels in numba's on-disk cache, as pynndescent
    already does with its own: umap-learn compiles them without `cache=True`, so every process
    paid for them on its first fit (1,000 points in a fresh process: 13.8 s, then 1.7 s with
    the kernels cached). A kernel numba cannot cache is compiled as before."""
    from numba.core.dispatcher import Dispatcher

    for name, module in list(sys.modules.items()):
        if name == "umap" or name.startswith("umap."):
            for kernel in vars(module).values():
                if isinstance(kernel, Dispatcher):
                    # no writable place for numba's cache: the kernel is compiled as before
                    with contextlib.suppress(RuntimeError):
                        kernel.enable_caching()


def make_pca_tsne(n_samples: int, seed: int, **params: Any) -> Pipeline:
    """PCA to 50 dimensions first, then t-SNE: the usual recipe for wide embeddings."""
    return _after_pca("tsne", make_tsne, n_samples, seed, params)


def make_pca_umap(n_samples: int, seed: int, **params: Any) -> Pipeline:
    """PCA to 50 dimensions first, then UMAP: each distance about 40 times cheaper than in
    2,048 dimensions, for maps of millions of images."""
    return _after_pca("umap", make_umap, n_samples, seed, params)


def _after_pca(name: str, make: Callable[..., Any], n_samples: int, seed: int,
               params: dict[str, Any]) -> Pipeline:
    components = params.pop("pca_components", PCA_COMPONENTS)
    return Pipeline(
        [
            ("pca", PCA(n_components=components, random_state=seed)),
            (name, make(n_samples, seed, **params)),
        ]
    )


REDUCERS: dict[str, Callable[..., Any]] = {
    "pca": make_pca,
    "tsne": make_tsne,
    "umap": make_umap,
    "pca_tsne": make_pca_tsne,
    "pca_umap": make_pca_umap,
}


def make_reducer(method: str, n_samples: int, dim: int, seed: int, **params: Any) -> Any:
    """The estimator for `method`, sized for `n_samples` points of width `dim`."""
    if method not in REDUCERS:
        raise ConfigError(
            f"projection method {method!r} is unknown; choose from {', '.join(REDUCERS)}"
        )
    if method.startswith("pca_"):
        params = {"pca_components": min(PCA_COMPONENTS, n_samples, dim), **params}
    return REDUCERS[method](n_samples, seed, **params)
