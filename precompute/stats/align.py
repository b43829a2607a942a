"""Procrustes alignment of one 2D map onto another, so a point stays roughly in place across layers.

The transform is a rotation or reflection, one uniform scale and a translation (scipy's
orthogonal Procrustes on the centred maps), so the shape of a map is kept and only its pose
changes. `aligned = scale * coords @ rotation + translation`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import orthogonal_procrustes


@dataclass(frozen=True)
class Alignment:
    """A similarity transform of the plane and how well it fits."""

    rotation: np.ndarray  # 2 × 2 orthogonal (a reflection when its determinant is -1)
    scale: float
    translation: np.ndarray  # 2
    disparity: float  # squared residual / squared spread of the target, 0 = perfect fit

    def apply(self, coords: np.ndarray) -> np.ndarray:
        """Move `coords` (N × 2) into the target's frame."""
        return (self.scale * np.asarray(coords, np.float64) @ self.rotation
                + self.translation).astype(np.float32)

    def record(self) -> dict[str, object]:
        """JSON-able form for a sidecar."""
        return {
            "rotation": self.rotation.round(6).tolist(),
            "scale": round(self.scale, 6),
            "translation": self.translation.round(6).tolist(),
            "disparity": round(self.disparity, 6),
        }


def procrustes_alignment(coords: np.ndarray, target: np.ndarray) -> Alignment:
    """The rotation/reflection, uniform scale and translation that best map `coords` onto
    `target` (same points, same order) in the least-squares sense."""
    source = np.asarray(coords, np.float64)
    goal = np.asarray(target, np.float64)
    source_mean, goal_mean = source.mean(axis=0), goal.mean(axis=0)
    centred, goal_centred = source - source_mean, goal - goal_mean
    rotation, singular_sum = orthogonal_procrustes(centred, goal_centred)
    spread = float((centred**2).sum())
    scale = float(singular_sum) / spread if spread > 0 else 1.0
    translation = goal_mean - scale * source_mean @ rotation
    residual = scale * centred @ rotation - goal_centred
    goal_spread = float((goal_centred**2).sum())
    disparity = float((residual**2).sum()) / goal_spread if goal_spread > 0 else 0.0
    return Alignment(rotation, scale, translation, disparity)
