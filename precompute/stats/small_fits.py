"""One BLAS thread for scikit-learn's small fits: OpenBLAS's threads cost more than they bring.

Measured on 2 cores, threaded against one thread: the separability probe (1,760 × 1,280, 43
classes, 5 folds) 3.6 s against 0.7 s; the quality stage's label probe (1,000 × 1,280, 22
classes, 5 folds) 10.9 s against 0.85 s; the linear run's fit (396 × 1,280, 11 classes, C
chosen by a 3-fold search) 7.0 s against 0.72 s. The results are the same.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> threadpool_limits:
    """A context in which numpy's and scipy's BLAS use one thread."""
    return threadpool_limits(1)
