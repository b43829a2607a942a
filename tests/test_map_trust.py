"""Map trust scores: neighbour preservation and trustworthiness of a 2D map against its space."""

import numpy as np
import pytest
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors

from precompute.stats.map_trust import ROWS_AT_ONCE, map_trust, score_sample
from precompute.stats.vectors import normalised


def clustered(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """64-d points in 8 clusters and a noisy 2D map that roughly keeps them."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((8, 64)) * 3
    labels = rng.integers(0, 8, count)
    vectors = (centres[labels] + rng.standard_normal((count, 64))).astype(np.float32)
    coords = centres[labels, :2] + 0.8 * rng.standard_normal((count, 2))
    return vectors, coords.astype(np.float32)


@pytest.mark.parametrize("count", [40, ROWS_AT_ONCE + 188])  # one block, and two
def test_trustworthiness_is_scikit_learns(count):
    vectors, coords = clustered(count)
    scores = map_trust(vectors, coords)
    expected = trustworthiness(normalised(vectors), coords, n_neighbors=10)
    assert scores.trustworthiness == pytest.approx(expected, abs=1e-6)
    assert scores.neighbours == 10 and scores.sample == count


def test_neighbour_preservation_counts_the_shared_neighbours():
    vectors, coords = clustered(300, seed=1)
    full = NearestNeighbors(n_neighbors=11, metric="cosine").fit(vectors)
    near_full = full.kneighbors(vectors, return_distance=False)[:, 1:]
    near_map = NearestNeighbors(n_neighbors=11).fit(coords).kneighbors(
        coords, return_distance=False)[:, 1:]
    shared = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(near_full, near_map, strict=True)])
    assert map_trust(vectors, coords).neighbour_preservation == pytest.approx(shared)


def test_a_shuffled_map_scores_as_chance_and_a_good_one_above():
    vectors, coords = clustered(400, seed=2)
    shuffled = coords[np.random.default_rng(3).permutation(len(coords))]
    good, chance = map_trust(vectors, coords), map_trust(vectors, shuffled)
    assert chance.trustworthiness == pytest.approx(0.5, abs=0.05)
    assert chance.neighbour_preservation < 0.05
    assert good.trustworthiness > 0.75 and good.neighbour_preservation > 4 * \
        chance.neighbour_preservation


def test_duplicate_images_keep_trustworthiness_within_one():
    """Ten images twelve times over: every image's 10th neighbour ties with copies left out
    of the 10, which ranked without a floor gave 1.034."""
    vectors, coords = clustered(120, seed=4)
    vectors = np.repeat(vectors[:10], 12, axis=0)
    coords = np.repeat(coords[:10], 12, axis=0) + 1e-3 * np.random.default_rng(1).standard_normal(
        (120, 2))
    assert 0.9 < map_trust(vectors, coords).trustworthiness <= 1.0


def test_the_score_sample_is_not_the_fit_sample():
    """Drawn from the seed alone, a smaller sample would be a subset of the projection's fit
    sample (numpy draws both the same way), and no point placed by `transform` would be
    scored."""
    fitted = set(np.random.default_rng(0).choice(150_000, 100_000, replace=False).tolist())
    scored = score_sample(150_000, seed=0, size=10_000)
    assert len(set(scored.tolist()) - fitted) > 2_000  # about a third, as chance would have it


def test_scores_come_from_a_seeded_sample_only_above_its_size():
    assert score_sample(50, seed=0, size=100).tolist() == list(range(50))
    rows = score_sample(1_000, seed=0, size=100)
    assert len(rows) == 100 and (np.diff(rows) > 0).all()
    assert rows.tolist() == score_sample(1_000, seed=0, size=100).tolist()
    with pytest.raises(ValueError, match="too small"):
        map_trust(np.ones((2, 4)), np.zeros((2, 2)))
