"""The linear probe: a multinomial logistic regression on standardised features, held-out by
stratified k-fold, fitted for a grouping's labels and all their shuffles at once.

It is scikit-learn's `make_pipeline(StandardScaler(), LogisticRegression(C=1))` (the same
objective: mean cross-entropy plus an L2 penalty of 1 / (2 C n) on the weights, none on the
intercepts; two classes as one logistic vector, as scikit-learn fits them), with three changes
that a profile of the analysis asked for (docs/benchmarks.md, *The analysis: a label and its
shuffles scored at once*):

- the shuffled labels are held out on the real labels' folds, so each fold's features are
  standardised once and one pass over them scores the label and every shuffle. The L-BFGS
  below runs one independent fit per fold and label version, all of them in lockstep, so each
  numpy call serves twenty fits (5 folds × 4 versions) instead of one;
- where a fold has fewer rows than dimensions, the fit runs in the span of its rows (an
  orthonormal basis from a QR factorisation). That is exact: an L2-penalised solution lies in
  that span, and the penalty and every product are unchanged by the rotation;
- float32, and no per-call overhead of SciPy's L-BFGS-B and scikit-learn's loss objects, which
  took two thirds of the time of scikit-learn's fits here.

Fits stop when every gradient component is below `PROBE_TOLERANCE` (scikit-learn's `tol`) or
after `PROBE_ITERATIONS`. Fits on real labels converge to the same optimum as
scikit-learn's; fits on shuffled labels mostly stop at the iteration limit, like scikit-learn's.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold

from precompute.stats.separability import Grouping
from precompute.stats.small_fits import one_blas_thread

# On 1,000 photos (46 groupings in each of 4 layers) nearly every fit on real labels converged
# within 100 iterations (scores moved by at most 0.003 against 1,000), while fits on shuffled
# labels ran on to 1,000 for baselines that moved by at most 0.005 (docs/benchmarks.md).
PROBE_ITERATIONS = 100
PROBE_TOLERANCE = 1e-4
HISTORY = 10  # L-BFGS correction pairs, as SciPy's default
ARMIJO = 1e-4  # sufficient decrease of a step
HALVINGS = 30  # a line search gives up after this many
RECIPE = {"model": "softmax regression, C = 1, standardised", "fit": "L-BFGS, float32",
          "iterations": PROBE_ITERATIONS, "tolerance": PROBE_TOLERANCE,
          "shuffles": "held out on the labels' folds"}


def probe_correct(
    vectors: np.ndarray, versions: list[np.ndarray], grouping: Grouping, folds: int, seed: int
) -> list[np.ndarray]:
    """For each label version (the labels, then their shuffles), whether each row's held-out
    prediction is its label. One probe per stratum, on stratified k-fold of the first
    version's labels (fewer folds where a class is smaller than `folds`)."""
    correct = [np.zeros(len(labels), dtype=bool) for labels in versions]
    with one_blas_thread():
        for members in grouping.stratum_positions():
            codes = np.stack([np.unique(labels[members], return_inverse=True)[1]
                              for labels in versions], axis=1)
            predicted = held_out_predictions(vectors[members], codes, folds, seed)
            for version, right in enumerate((predicted == codes).T):
                correct[version][members] = right
    return correct


def held_out_predictions(
    points: np.ndarray, codes: np.ndarray, folds: int, seed: int
) -> np.ndarray:
    """Each row's predicted class (rows × versions) from the probe of the fold that held it
    out; `codes` are class codes 0..k-1 per row and version, the same classes in each."""
    classes = int(codes.max()) + 1
    sizes = np.bincount(codes[:, 0], minlength=classes)
    splits = max(2, min(folds, int(sizes[sizes > 0].min())))
    split = StratifiedKFold(splits, shuffle=True, random_state=seed).split(points, codes[:, 0])
    parts = []  # (train rows, test rows, train features, test features) per fold
    for train, test in split:
        fitted, held_out = standardised(points[train], points[test])
        if span_pays(*fitted.shape, codes.shape[1] * classes):
            basis, triangle = np.linalg.qr(fitted.T)
            fitted, held_out = np.ascontiguousarray(triangle.T), held_out @ basis
        parts.append((train, test, fitted, held_out))
    features, used, targets = stacked_folds(parts, codes, classes)
    # two classes: one logistic vector with penalty 1 / (2 C n) is two softmax vectors with
    # twice that penalty
    penalty = (2.0 if classes == 2 else 1.0) / used.sum(axis=1)
    weights, intercepts = fit_softmax(features, used, targets, penalty)
    predicted = np.zeros_like(codes)
    for fold, (_, test, _, held_out) in enumerate(parts):
        scores = np.einsum("nd,vkd->nvk", held_out, weights[fold, ..., : held_out.shape[1]])
        predicted[test] = (scores + intercepts[fold]).argmax(axis=2)
    return predicted


def stacked_folds(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], codes: np.ndarray,
    classes: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The folds' training features (folds × d × n), the rows in use (folds × n) and one-hot
    targets (folds × versions × k × n), rows last (see `softmax_loss`). A fold with fewer rows
    is padded with rows the loss ignores, one in a narrower span with zero columns, whose
    weights stay zero."""
    rows = max(len(train) for train, *_ in parts)
    dims = max(fitted.shape[1] for *_, fitted, _ in parts)
    features = np.zeros((len(parts), dims, rows), dtype=np.float32)
    used = np.zeros((len(parts), rows), dtype=bool)
    targets = np.zeros((len(parts), codes.shape[1], classes, rows), dtype=np.float32)
    for fold, (train, _, fitted, _) in enumerate(parts):
        features[fold, : fitted.shape[1], : len(train)] = fitted.T
        used[fold, : len(train)] = True
        versions, positions = np.meshgrid(np.arange(codes.shape[1]), np.arange(len(train)),
                                          indexing="ij")
        targets[fold, versions, codes[train].T, positions] = 1.0
    return features, used, targets


def span_pays(rows: int, dims: int, outputs: int) -> bool:
    """Whether fitting in the span of the rows saves more than its QR factorisation costs
    (about 2·dims·rows² operations), against the two products a loss evaluation makes
    (4·rows·dims·outputs) over `PROBE_ITERATIONS` evaluations."""
    return rows < dims and PROBE_ITERATIONS * 2 * (dims - rows) * outputs > dims * rows


def standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both parts scaled to the training part's zero mean and unit variance (float32;
    constant features left unscaled, as scikit-learn's StandardScaler)."""
    mean = train.mean(axis=0, dtype=np.float64)
    scale = train.std(axis=0, dtype=np.float64)
    scale[scale == 0] = 1.0
    return (((train - mean) / scale).astype(np.float32),
            ((test - mean) / scale).astype(np.float32))


def fit_softmax(
    features: np.ndarray, used: np.ndarray, targets: np.ndarray, penalty: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (folds × versions × k × d) and intercepts (folds × versions × k) minimising, for
    each fold and version independently, mean cross-entropy over the fold's `used` rows +
    its penalty / 2 · |weights|², from `features` (folds × d × n) and one-hot `targets`
    (folds × versions × k × n): L-BFGS with a backtracking (Armijo) line search, in lockstep
    over every fit, each with its own corrections, step and stopping."""
    dims = features.shape[1]
    versions, classes = targets.shape[1:3]
    counts = used.sum(axis=1)
    params = np.zeros((features.shape[0], versions, dims * classes + classes), dtype=np.float32)
    loss, gradient = softmax_loss(params, features, used, targets, penalty, counts)
    steps = np.zeros((HISTORY, *params.shape), dtype=np.float32)  # a ring of corrections
    changes = np.zeros_like(steps)  # the gradient's change over each step
    inverse_curvature = np.zeros(steps.shape[:-1], dtype=np.float32)  # 0: pair skipped
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
        slope = dot(gradient, direction)
        step = np.ones(running.shape, dtype=np.float32)
        trial = params + direction
        new_loss, new_gradient = softmax_loss(trial, features, used, targets, penalty, counts)
        for _ in range(HALVINGS):
            short = new_loss > loss + ARMIJO * step * slope
            if not short.any():
                break
            step[short] /= 2
            trial[short] = params[short] + step[short, None] * direction[short]
            again = short.any(axis=1)  # the folds to evaluate again
            retried = softmax_loss(trial[again], features[again], used[again], targets[again],
                                   penalty[again], counts[again])
            redo = short[again]
            new_loss[again] = np.where(redo, retried[0], new_loss[again])
            new_gradient[again] = np.where(redo[..., None], retried[1], new_gradient[again])
        else:  # no sufficient decrease: those fits stop where they were
            stuck = new_loss > loss + ARMIJO * step * slope
            trial[stuck], new_loss[stuck], new_gradient[stuck] = (
                params[stuck], loss[stuck], gradient[stuck])
            running &= ~stuck
        step_taken, change = trial - params, new_gradient - gradient
        curvature = dot(step_taken, change)
        usable = curvature > 1e-10
        slot = iteration % HISTORY
        steps[slot] = step_taken * usable[..., None]
        changes[slot] = change * usable[..., None]
        inverse_curvature[slot] = np.where(usable, 1.0 / np.where(usable, curvature, 1.0), 0.0)
        scale = np.where(usable, curvature / np.maximum(dot(change, change), 1e-30), scale)
        params, loss, gradient = trial, new_loss, new_gradient
    weights = params[..., : dims * classes].reshape(*params.shape[:2], classes, dims)
    return weights, params[..., dims * classes:]


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
        alphas[pair] = inverse_curvature[pair] * dot(steps[pair], direction)
        direction -= alphas[pair][..., None] * changes[pair]
    direction *= scale[..., None]
    for pair in order:
        beta = inverse_curvature[pair] * dot(changes[pair], direction)
        direction += (alphas[pair] - beta)[..., None] * steps[pair]
    return direction


def dot(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Dot products along the last axis."""
    return np.einsum("...p,...p->...", left, right)


def softmax_loss(
    params: np.ndarray, features: np.ndarray, used: np.ndarray, targets: np.ndarray,
    penalty: np.ndarray, counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per fold and version: mean cross-entropy over the used rows + penalty / 2 · |weights|²,
    and its gradient. One product of each fold's features with every version's weights, one
    back. Classes run along the second-last axis and rows along the last, so the sums over
    classes are sums of whole rows of numbers (numpy is slow over a short last axis)."""
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
