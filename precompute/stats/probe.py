"""The linear probe: held-out accuracy of a softmax regression, for labels and shuffles at once.

It is scikit-learn's `make_pipeline(StandardScaler(), LogisticRegression(C=1))` (the same
objective: mean cross-entropy plus an L2 penalty of 1 / (2 C n) on the weights, none on the
intercepts; two classes as one logistic vector, as scikit-learn fits them), on stratified
k-fold, with three changes that a profile of the analysis asked for (docs/benchmarks.md, *The
analysis: a label and its shuffles scored at once*):

- the shuffles of the labels are permuted within the labels' folds (`fold_ids`), so every
  version holds the same classes in each fold, stratified alike, and each fold's features are
  standardised once for all of them. The L-BFGS below runs one independent fit per fold and
  label version, all in lockstep, so each numpy call serves twenty fits (5 folds × 4 versions);
- where a fold has fewer rows than dimensions, the fit runs in the span of its rows, in the
  coordinates of an orthonormal basis of it that a pivoted Cholesky factor of the rows' Gram
  matrix gives (`span_coordinates`). That is exact: an L2-penalised solution lies in that span,
  and the penalty and every product are unchanged by the rotation;
- float32, and no per-call overhead of SciPy's L-BFGS-B and scikit-learn's loss objects, which
  took two thirds of the time of scikit-learn's fits here.

Fits stop when every gradient component is below `PROBE_TOLERANCE` (scikit-learn's `tol`) or
after `PROBE_ITERATIONS`. Fits on real labels converge to scikit-learn's optimum; fits on
shuffled labels mostly stop at the iteration limit, as scikit-learn's did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.linalg import lapack, solve_triangular
from sklearn.model_selection import StratifiedKFold

from precompute.stats.separability import Grouping, codes_within
from precompute.stats.small_fits import one_blas_thread

# Where scikit-learn's fits stopped before this solver: on 1,000 photos (46 groupings in each of
# 4 layers) nearly every fit on real labels converged within 100 iterations (scores moved by at
# most 0.003 against 1,000), while fits on shuffled labels ran on to 1,000 for baselines that
# moved by at most 0.005 (docs/benchmarks.md, A first map of a new dataset).
PROBE_ITERATIONS = 100
PROBE_TOLERANCE = 1e-4
HISTORY = 10  # L-BFGS correction pairs, as SciPy's default
ARMIJO = 1e-4  # the sufficient decrease a step must make
HALVINGS = 30  # a line search gives up after this many
CURVATURE = float(np.finfo(np.float32).eps)  # a pair is used where s·y > CURVATURE · y·y
BATCH_BYTES = 512 * 2**20  # the working arrays of the folds fitted together, at most
RECIPE = {"model": "softmax regression, C = 1, standardised", "fit": "L-BFGS, float32",
          "iterations": PROBE_ITERATIONS, "tolerance": PROBE_TOLERANCE,
          "shuffles": "permuted within the labels' folds"}


class Fold(NamedTuple):
    """One fold of a stratum: its rows and their standardised features, in the span of the
    training rows where that pays."""

    train: np.ndarray  # positions of the training rows
    test: np.ndarray  # positions of the held-out rows
    fitted: np.ndarray  # training rows × dimensions
    held_out: np.ndarray  # held-out rows × the same dimensions


def fold_ids(grouping: Grouping, folds: int, seed: int) -> np.ndarray:
    """Each row's held-out fold (0, 1, …): stratified k-fold of its labels within its stratum,
    fewer folds where a class is smaller than `folds`. Give them to `assess` as the blocks the
    probe's shuffles are permuted within."""
    ids = np.zeros(len(grouping.labels), dtype=np.int64)
    for members in grouping.stratum_positions():
        labels = grouping.labels[members]
        splits = max(2, min(folds, int(np.bincount(labels)[np.unique(labels)].min())))
        split = StratifiedKFold(splits, shuffle=True, random_state=seed).split(members, labels)
        for fold, (_, test) in enumerate(split):
            ids[members[test]] = fold
    return ids


def probe_correct(
    vectors: np.ndarray, versions: list[np.ndarray], grouping: Grouping, folds: np.ndarray
) -> list[np.ndarray]:
    """For each label version (the labels, then their shuffles), whether each row's held-out
    prediction is its label: one probe per stratum and fold, `folds` from `fold_ids`."""
    correct = [np.zeros(len(labels), dtype=bool) for labels in versions]
    with one_blas_thread():
        for members in grouping.stratum_positions():
            codes = np.stack(codes_within(versions, members), axis=1)
            predicted = held_out_predictions(vectors[members], codes, folds[members])
            for version, right in enumerate((predicted == codes).T):
                correct[version][members] = right
    return correct


def held_out_predictions(points: np.ndarray, codes: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Each row's predicted class (rows × versions) from the probe of the fold that held it
    out; `codes` are class codes 0..k-1 per row and version, the same classes in each."""
    classes = int(codes.max()) + 1
    prepared = [prepared_fold(points, folds == fold, codes.shape[1] * classes)
                for fold in np.unique(folds)]
    predicted = np.zeros_like(codes)
    for batch, versions in fit_batches(prepared, codes.shape[1], classes):
        features, used, targets = stacked_folds(batch, codes[:, versions], classes)
        weights, intercepts = fit_softmax(features, used, targets,
                                          softmax_penalty(classes, used.sum(axis=1)))
        for fold, part in enumerate(batch):
            scores = np.einsum("nd,vkd->nvk", part.held_out,
                               weights[fold, ..., : part.held_out.shape[1]])
            predicted[part.test, versions] = (scores + intercepts[fold]).argmax(axis=2)
    return predicted


def prepared_fold(points: np.ndarray, held_out: np.ndarray, outputs: int) -> Fold:
    """The fold that holds out the rows where `held_out` is true, its features standardised on
    its training rows, and rotated into their span where `span_pays`."""
    train, test = np.flatnonzero(~held_out), np.flatnonzero(held_out)
    fitted, tested = standardised(points[train], points[test])
    if span_pays(*fitted.shape, outputs):
        fitted, tested = span_coordinates(fitted, tested)
    return Fold(train, test, fitted, tested)


def span_pays(rows: int, dims: int, outputs: int) -> bool:
    """Whether fitting in the span of the rows saves more than finding it costs (their Gram
    matrix, about dims·rows² operations, and its Cholesky factor, rows³/3), against the two
    products a loss evaluation makes (4·rows·dims·outputs) over `PROBE_ITERATIONS`
    evaluations."""
    saved = PROBE_ITERATIONS * 4 * rows * (dims - rows) * outputs
    return rows < dims and saved > dims * rows**2 + rows**3 / 3


def span_coordinates(fitted: np.ndarray, tested: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both parts' coordinates in an orthonormal basis of the span of `fitted`'s rows (rows ×
    rank and held-out rows × rank), with every inner product kept. The Gram matrix's pivoted
    Cholesky factor is the fitted rows' coordinates, and the held-out rows' follow by a
    triangular solve from their products with the pivot rows; rows that depend on others (a
    duplicate image) add no dimension. In float64: from float32's Gram matrix LAPACK's rank
    test cut a steep spectrum's smaller directions (105 of 799 kept). About half the time of a
    QR factorisation of the rows (docs/benchmarks.md, *The probe's span from the Gram
    matrix*)."""
    rows = fitted.astype(np.float64)  # float32's rounding in the Gram matrix would cut the
    # directions of its smaller singular values, which a weakly penalised fit still uses
    factor, pivots, rank, _ = lapack.dpstrf(rows @ rows.T, lower=1, overwrite_a=1)
    pivots -= 1  # LAPACK counts from 1
    lower = np.tril(factor[:, :rank])  # the rows in pivot order
    coordinates = np.empty((len(rows), rank), dtype=np.float32)
    coordinates[pivots] = lower
    tested = solve_triangular(lower[:rank], rows[pivots[:rank]] @ tested.T.astype(np.float64),
                              lower=True)
    return coordinates, np.ascontiguousarray(tested.T, dtype=np.float32)


def standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both parts scaled to the training part's zero mean and unit variance (float32;
    constant features left unscaled, as scikit-learn's StandardScaler)."""
    mean = train.mean(axis=0, dtype=np.float64)
    scale = train.std(axis=0, dtype=np.float64)
    scale[scale == 0] = 1.0
    return (((train - mean) / scale).astype(np.float32),
            ((test - mean) / scale).astype(np.float32))


def fit_batches(
    folds: list[Fold], versions: int, classes: int
) -> list[tuple[list[Fold], slice]]:
    """The folds and label versions fitted together, each batch's working arrays (parameters,
    gradients, `HISTORY` correction pairs; features, logits and targets) within
    `BATCH_BYTES`: every version of several folds, or, for an attribute with hundreds of
    classes, fewer versions of one fold at a time."""
    rows = max(len(fold.train) for fold in folds)
    dims = max(fold.fitted.shape[1] for fold in folds)
    per_version = 4 * ((2 * HISTORY + 6) * classes * (dims + 1) + 4 * classes * rows)
    per_fold = 4 * dims * rows + versions * per_version
    if per_fold > BATCH_BYTES:
        at_once = max(1, (BATCH_BYTES - 4 * dims * rows) // per_version)
        return [([fold], slice(start, min(start + at_once, versions)))
                for start in range(0, versions, at_once) for fold in folds]
    size = BATCH_BYTES // per_fold
    return [(folds[start:start + size], slice(None)) for start in range(0, len(folds), size)]


def stacked_folds(
    folds: list[Fold], codes: np.ndarray, classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The folds' training features (folds × d × n), the rows in use (folds × n) and one-hot
    targets (folds × versions × k × n), rows last (see `softmax_loss`). A fold with fewer rows
    is padded with rows the loss ignores, one in a narrower span with zero columns, whose
    weights stay zero."""
    rows = max(len(fold.train) for fold in folds)
    dims = max(fold.fitted.shape[1] for fold in folds)
    features = np.zeros((len(folds), dims, rows), dtype=np.float32)
    used = np.zeros((len(folds), rows), dtype=bool)
    targets = np.zeros((len(folds), codes.shape[1], classes, rows), dtype=np.float32)
    for index, fold in enumerate(folds):
        features[index, : fold.fitted.shape[1], : len(fold.train)] = fold.fitted.T
        used[index, : len(fold.train)] = True
        versions, positions = np.meshgrid(np.arange(codes.shape[1]), np.arange(len(fold.train)),
                                          indexing="ij")
        targets[index, versions, codes[fold.train].T, positions] = 1.0
    return features, used, targets


def softmax_penalty(classes: int, rows: np.ndarray) -> np.ndarray:
    """scikit-learn's L2 penalty at C = 1 for fits of `rows` rows, as a softmax fit's: 1 / rows,
    and twice that for two classes, which scikit-learn fits as one logistic vector (its optimum
    is the difference of two softmax vectors that each take half of it)."""
    return (2.0 if classes == 2 else 1.0) / np.asarray(rows, dtype=np.float64)


def fit_softmax(
    features: np.ndarray, used: np.ndarray, targets: np.ndarray, penalty: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (folds × versions × k × d) and intercepts (folds × versions × k) minimising, for
    each fold and version independently, mean cross-entropy over the fold's `used` rows + its
    penalty / 2 · |weights|², from `features` (folds × d × n) and one-hot `targets` (folds ×
    versions × k × n): L-BFGS in lockstep over every fit, each with its own correction pairs,
    step and stopping."""
    dims = features.shape[1]
    versions, classes = targets.shape[1:3]
    counts = used.sum(axis=1)

    def evaluate(params: np.ndarray, folds: np.ndarray | slice = slice(None)
                 ) -> tuple[np.ndarray, np.ndarray]:
        return softmax_loss(params, features[folds], used[folds], targets[folds],
                            penalty[folds], counts[folds])

    params = np.zeros((features.shape[0], versions, dims * classes + classes), dtype=np.float32)
    loss, gradient = evaluate(params)
    steps = np.zeros((HISTORY, *params.shape), dtype=np.float32)  # a ring of correction pairs
    changes = np.zeros_like(steps)  # the gradient's change over each step
    inverse_curvature = np.zeros(steps.shape[:-1], dtype=np.float32)  # 0: the pair is skipped
    scale = 1.0 / np.maximum(np.linalg.norm(gradient, axis=-1), 1e-12)  # the first step's
    running = np.ones(params.shape[:-1], dtype=bool)
    for iteration in range(PROBE_ITERATIONS):
        running &= np.abs(gradient).max(axis=-1) > PROBE_TOLERANCE
        if not running.any():
            break
        kept = min(iteration, HISTORY)
        order = [(iteration - kept + pair) % HISTORY for pair in range(kept)]
        direction = -two_loop(gradient, steps, changes, inverse_curvature, scale, order)
        direction[~running] = 0.0  # a finished fit stays where it is
        trial, new_loss, new_gradient, stuck = line_search(params, direction, loss, gradient,
                                                           evaluate)
        running &= ~stuck
        step, change = trial - params, new_gradient - gradient
        curvature, change_norm = inner(step, change), inner(change, change)
        usable = curvature > CURVATURE * change_norm
        slot = iteration % HISTORY
        steps[slot] = step * usable[..., None]
        changes[slot] = change * usable[..., None]
        inverse_curvature[slot] = np.where(usable, 1.0 / np.where(usable, curvature, 1.0), 0.0)
        scale = np.where(usable, curvature / np.maximum(change_norm, 1e-30), scale)
        params, loss, gradient = trial, new_loss, new_gradient
    weights = params[..., : dims * classes].reshape(*params.shape[:2], classes, dims)
    return weights, params[..., dims * classes:]


Evaluation = Callable[..., tuple[np.ndarray, np.ndarray]]  # (parameters, folds) → loss, gradient


def line_search(
    params: np.ndarray, direction: np.ndarray, loss: np.ndarray, gradient: np.ndarray,
    evaluate: Evaluation,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Backtracking from a unit step along `direction`, halving each fit's step until its loss
    makes the sufficient (Armijo) decrease; only the folds with a step still too long are
    evaluated again. Returns the new parameters, loss and gradient, and the fits that found no
    such step in `HALVINGS` halvings, which keep their parameters and stop."""
    slope = inner(gradient, direction)
    step = np.ones(loss.shape, dtype=np.float32)
    trial = params + direction
    new_loss, new_gradient = evaluate(trial)
    for halvings in range(HALVINGS + 1):
        short = ~(new_loss <= loss + ARMIJO * step * slope)  # a NaN loss is too long as well
        if not short.any() or halvings == HALVINGS:
            break
        step[short] /= 2
        trial[short] = params[short] + step[short, None] * direction[short]
        again = short.any(axis=1)
        retried_loss, retried_gradient = evaluate(trial[again], again)
        redo = short[again]
        new_loss[again] = np.where(redo, retried_loss, new_loss[again])
        new_gradient[again] = np.where(redo[..., None], retried_gradient, new_gradient[again])
    # the fits still short (none, nearly always) stay where they were
    trial[short], new_loss[short], new_gradient[short] = (
        params[short], loss[short], gradient[short])
    return trial, new_loss, new_gradient, short


def two_loop(
    gradient: np.ndarray, steps: np.ndarray, changes: np.ndarray,
    inverse_curvature: np.ndarray, scale: np.ndarray, order: list[int],
) -> np.ndarray:
    """L-BFGS's inverse-Hessian estimate times `gradient`, per fit (the last axis holds a fit's
    parameters), from the correction pairs at `order` (oldest first); a pair with zero inverse
    curvature adds nothing."""
    direction = gradient.copy()
    alphas = {}
    for pair in reversed(order):
        alphas[pair] = inverse_curvature[pair] * inner(steps[pair], direction)
        direction -= alphas[pair][..., None] * changes[pair]
    direction *= scale[..., None]
    for pair in order:
        beta = inverse_curvature[pair] * inner(changes[pair], direction)
        direction += (alphas[pair] - beta)[..., None] * steps[pair]
    return direction


def inner(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Each fit's inner product of two of its parameter vectors (the last axis)."""
    return np.einsum("...p,...p->...", left, right)


def softmax_loss(
    params: np.ndarray, features: np.ndarray, used: np.ndarray, targets: np.ndarray,
    penalty: np.ndarray, counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per fold and version: mean cross-entropy over the used rows + penalty / 2 · |weights|²,
    and its gradient. One product of each fold's features with every version's weights, one
    back. Classes run along the second-last axis and rows along the last, so the sums over
    classes are sums of whole rows of numbers (numpy is slow over a short last axis: 2.5×
    the time of the whole fit on a 40-d layer)."""
    folds, dims, rows = features.shape
    versions, classes = targets.shape[1:3]
    weights = params[..., : dims * classes].reshape(folds, versions, classes, dims)
    logits = (weights.reshape(folds, versions * classes, dims) @ features).reshape(
        folds, versions, classes, rows) + params[..., dims * classes:, None]
    logits -= logits.max(axis=2, keepdims=True)
    exps = np.exp(logits)
    totals = exps.sum(axis=2, keepdims=True)
    weight = (used / counts[:, None]).astype(np.float32)[:, None, None, :]  # folds × 1 × 1 × rows
    per_row = np.log(totals) - (logits * targets).sum(axis=2, keepdims=True)
    loss = ((per_row * weight).sum(axis=(2, 3))
            + 0.5 * penalty[:, None] * np.einsum("fvkd,fvkd->fv", weights, weights))
    errors = (exps / totals - targets) * weight
    weight_gradient = (errors.reshape(folds, versions * classes, rows)
                       @ features.transpose(0, 2, 1)).reshape(weights.shape)
    weight_gradient += penalty[:, None, None, None] * weights
    gradient = np.concatenate(
        [weight_gradient.reshape(folds, versions, -1), errors.sum(axis=3)], axis=2)
    return loss.astype(np.float32), gradient.astype(np.float32)
