"""The linear probe: a multinomial logistic regression on standardised features, held-out by
stratified k-fold, fitted for a grouping's labels and all their shuffles at once.

It is scikit-learn's `make_pipeline(StandardScaler(), LogisticRegression(C=1))` (the same
objective: mean cross-entropy plus an L2 penalty of 1 / (2 C n) on the weights, none on the
intercepts; two classes as one logistic vector, as scikit-learn fits them), with three changes
that a profile of the analysis asked for (docs/benchmarks.md, *The probe, fitted for a label
and its shuffles at once*):

- the shuffled labels are held out on the real labels' folds, so each fold's features are
  standardised once and one pass over them scores the label and every shuffle: the L-BFGS below
  runs one independent fit per label version, vectorised over the versions;
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
    predicted = np.zeros_like(codes)
    targets = np.zeros((len(points), codes.shape[1], classes), dtype=np.float32)
    np.put_along_axis(targets, codes[:, :, None], 1.0, axis=2)
    for train, test in StratifiedKFold(splits, shuffle=True, random_state=seed).split(
        points, codes[:, 0]
    ):
        fitted, held_out = standardised(points[train], points[test])
        if span_pays(*fitted.shape, codes.shape[1] * classes):
            basis, triangle = np.linalg.qr(fitted.T)
            fitted, held_out = np.ascontiguousarray(triangle.T), held_out @ basis
        # two classes: one logistic vector with penalty 1 / (2 C n) is two softmax vectors
        # with twice that penalty
        penalty = (2.0 if classes == 2 else 1.0) / len(train)
        weights, intercepts = fit_softmax(fitted, targets[train], penalty)
        scores = np.einsum("nd,vdk->nvk", held_out, weights) + intercepts
        predicted[test] = scores.argmax(axis=2)
    return predicted


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
    features: np.ndarray, targets: np.ndarray, penalty: float
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (versions × d × k) and intercepts (versions × k) minimising, for each version
    independently, mean cross-entropy + penalty / 2 · |weights|² over `features` (n × d) and
    one-hot `targets` (n × versions × k): L-BFGS with a backtracking (Armijo) line search, in
    lockstep over the versions, each with its own corrections, step and stopping. A fit that
    stops leaves the arrays, so the others run without copies."""
    dims = features.shape[1]
    versions, classes = targets.shape[1:]
    size = dims * classes + classes
    fitted = np.zeros((versions, size), dtype=np.float32)
    running = np.arange(versions)  # the versions still fitted, in the arrays' order
    params = np.zeros((versions, size), dtype=np.float32)
    loss, gradient = softmax_loss(params, features, targets, penalty)
    steps = np.zeros((HISTORY, versions, size), dtype=np.float32)  # a ring of corrections
    changes = np.zeros_like(steps)  # the gradient's change over each step
    inverse_curvature = np.zeros((HISTORY, versions), dtype=np.float32)  # 0: pair skipped
    scale = 1.0 / np.maximum(np.linalg.norm(gradient, axis=1), 1e-12)  # the first step's
    stuck = np.zeros(versions, dtype=bool)
    for iteration in range(PROBE_ITERATIONS):
        done = stuck | (np.abs(gradient).max(axis=1) <= PROBE_TOLERANCE)
        if done.any():
            fitted[running[done]] = params[done]
            left = ~done
            running, params, loss, gradient, scale, stuck = (
                running[left], params[left], loss[left], gradient[left], scale[left],
                stuck[left])
            steps, changes = steps[:, left], changes[:, left]
            inverse_curvature, targets = inverse_curvature[:, left], targets[:, left]
            if not len(running):
                break
        kept = min(iteration, HISTORY)
        order = [(iteration - kept + pair) % HISTORY for pair in range(kept)]
        direction = -two_loop(gradient, steps, changes, inverse_curvature, scale, order)
        slope = np.einsum("vp,vp->v", gradient, direction)
        step = np.ones(len(running), dtype=np.float32)
        trial = params + direction
        new_loss, new_gradient = softmax_loss(trial, features, targets, penalty)
        for _ in range(HALVINGS):
            short = new_loss > loss + ARMIJO * step * slope
            if not short.any():
                break
            step[short] /= 2
            trial[short] = params[short] + step[short, None] * direction[short]
            new_loss[short], new_gradient[short] = softmax_loss(
                trial[short], features, targets[:, short], penalty)
        else:  # no sufficient decrease: those fits stop where they were
            stuck = new_loss > loss + ARMIJO * step * slope
            trial[stuck], new_loss[stuck], new_gradient[stuck] = (
                params[stuck], loss[stuck], gradient[stuck])
        step_taken, change = trial - params, new_gradient - gradient
        curvature = np.einsum("vp,vp->v", step_taken, change)
        usable = curvature > 1e-10
        slot = iteration % HISTORY
        steps[slot] = step_taken * usable[:, None]
        changes[slot] = change * usable[:, None]
        inverse_curvature[slot] = np.where(usable, 1.0 / np.where(usable, curvature, 1.0), 0.0)
        change_norm = np.einsum("vp,vp->v", change, change)
        scale = np.where(usable, curvature / np.maximum(change_norm, 1e-30), scale)
        params, loss, gradient = trial, new_loss, new_gradient
    fitted[running] = params
    weights = fitted[:, : dims * classes].reshape(versions, dims, classes)
    return weights, fitted[:, dims * classes:]


def two_loop(
    gradient: np.ndarray, steps: np.ndarray, changes: np.ndarray,
    inverse_curvature: np.ndarray, scale: np.ndarray, order: list[int],
) -> np.ndarray:
    """L-BFGS's inverse-Hessian estimate times `gradient`, per version (rows), from the
    correction pairs at `order` (oldest first); a pair with zero inverse curvature adds
    nothing."""
    direction = gradient.copy()
    alphas = {}
    for pair in reversed(order):
        alphas[pair] = inverse_curvature[pair] * np.einsum("vp,vp->v", steps[pair], direction)
        direction -= alphas[pair][:, None] * changes[pair]
    direction *= scale[:, None]
    for pair in order:
        beta = inverse_curvature[pair] * np.einsum("vp,vp->v", changes[pair], direction)
        direction += (alphas[pair] - beta)[:, None] * steps[pair]
    return direction


def softmax_loss(
    params: np.ndarray, features: np.ndarray, targets: np.ndarray, penalty: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per version: mean cross-entropy + penalty / 2 · |weights|², and its gradient. One
    product of the features with every version's weights, one back."""
    rows, dims = features.shape
    versions, classes = targets.shape[1:]
    weights = params[:, : dims * classes].reshape(versions, dims, classes)
    logits = features @ weights.transpose(1, 0, 2).reshape(dims, versions * classes)
    logits = logits.reshape(rows, versions, classes) + params[:, dims * classes:]
    logits -= logits.max(axis=2, keepdims=True)
    exps = np.exp(logits)
    totals = exps.sum(axis=2, keepdims=True)
    loss = ((np.log(totals).sum(axis=(0, 2)) - (logits * targets).sum(axis=(0, 2))) / rows
            + 0.5 * penalty * np.einsum("vdk,vdk->v", weights, weights))
    errors = (exps / totals - targets) / rows
    weight_gradient = (features.T @ errors.reshape(rows, versions * classes)).reshape(
        dims, versions, classes).transpose(1, 0, 2) + penalty * weights
    gradient = np.concatenate(
        [weight_gradient.reshape(versions, dims * classes), errors.sum(axis=0)], axis=1)
    return loss.astype(np.float32), gradient.astype(np.float32)
