"""Pixel agreement of two images: the check that confirms a near-duplicate pair found in a
feature space is a copy of one picture, not two pictures the network sees as alike.

A network's features put different paintings of one series (the same mount, another figure),
the same print in another ink, or two canvases of the same layout in other colours as close as
a re-encoded copy (docs/results.md, *Data quality*). Their pixels differ. Each image is reduced
to small RGB pictures of its centre at several crops; two images are copies when some pair of
crops within `MAX_SCALE` of each other (so a copy with its borders cut off still lines up) has
the same layout (grey correlation ≥ `SAME_LAYOUT`) and the same colours (root-mean-square
difference ≤ `SAME_COLOURS` levels of 255). Crops of the centre leave out the mounts and frames
that make a series look alike. A near-blank canvas has no layout to correlate; a pair with one
is a copy only if its colours agree almost exactly (≤ `SAME_BLANK`).

Measured on wikiart_subset (bench/quality_injection.py, docs/results.md): copies re-encoded,
resized to 2/3 or cropped 10% reach correlation ≥ 0.98 and differ by at most 13.1 levels; the
look-alikes the penultimate layer puts above 0.825 differ by 18–75. Among its 34 near-blank
paintings, copies differ by at most 1.6 levels and different paintings by 3.2 or more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

CROPS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)  # centred share of each side kept
MAX_SCALE = 1.3  # the largest ratio of two crops compared: copies cropped by up to ~25% match
SIDE = 24  # pixels per side of each small picture
LOW_CONTRAST = 4.0  # grey levels: a crop whose standard deviation is below this has no layout
SAME_LAYOUT = 0.9  # grey correlation from which two crops show the same layout
SAME_COLOURS = 15.0  # root-mean-square RGB difference (of 255) up to which colours are the same
SAME_BLANK = 2.4  # the same, for a pair with a near-blank image (no layout to compare)
# What decides a pair: a kept result of the check is redone when any of these changes.
SETTINGS = {"crops": CROPS, "max_scale": MAX_SCALE, "side": SIDE, "low_contrast": LOW_CONTRAST,
            "same_layout": SAME_LAYOUT, "same_colours": SAME_COLOURS, "same_blank": SAME_BLANK}
_RATIO = np.divide.outer(CROPS, CROPS)
COMPARED = (_RATIO <= MAX_SCALE) & (_RATIO >= 1 / MAX_SCALE)  # which pairs of crops are compared


@dataclass(frozen=True)
class Signature:
    """An image's centre at each crop of `CROPS`: its colours (crops × SIDE² × 3, uint8) and
    its layout (grey pixels centred and scaled to unit length, crops × SIDE², float16; a crop
    without contrast has none). About 23 KB."""

    colours: np.ndarray
    layouts: np.ndarray
    has_layout: np.ndarray  # one bool per crop

    @property
    def blank(self) -> bool:
        return not self.has_layout.any()


def signature(image: Image.Image) -> Signature:
    """The signature of `image` (see `Signature`)."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    crops = []
    for keep in CROPS:
        margin_x, margin_y = width * (1 - keep) / 2, height * (1 - keep) / 2
        crops.append(np.asarray(rgb.resize(
            (SIDE, SIDE), Image.Resampling.BOX,
            box=(margin_x, margin_y, width - margin_x, height - margin_y)), dtype=np.float32))
    colours = np.stack(crops).reshape(len(CROPS), -1, 3)
    grey = colours.mean(axis=2)
    grey -= grey.mean(axis=1, keepdims=True)
    spread = grey.std(axis=1)
    has_layout = spread >= LOW_CONTRAST
    layouts = grey / np.where(has_layout, spread * np.sqrt(grey.shape[1]), 1.0)[:, None]
    return Signature(np.round(colours).astype(np.uint8),
                     np.where(has_layout[:, None], layouts, 0.0).astype(np.float16), has_layout)


def pixel_difference(first: Signature, second: Signature) -> float:
    """How far apart two images' colours are (root-mean-square, levels of 255): at the pair of
    crops whose layouts correlate best, infinite when no pair shows the same layout; with a
    near-blank image, at the pair of crops closest in colour."""
    colours_first = first.colours.astype(np.float32)
    colours_second = second.colours.astype(np.float32)
    if first.blank or second.blank:
        rows, columns = np.nonzero(COMPARED)
        return float(np.sqrt(((colours_first[rows] - colours_second[columns]) ** 2)
                             .mean(axis=(1, 2))).min())
    correlation = np.where(COMPARED & np.outer(first.has_layout, second.has_layout),
                           first.layouts.astype(np.float32) @ second.layouts.T.astype(np.float32),
                           -np.inf)
    i, j = np.unravel_index(np.argmax(correlation), correlation.shape)
    if correlation[i, j] < SAME_LAYOUT:
        return np.inf
    return float(np.sqrt(np.mean((colours_first[i] - colours_second[j]) ** 2)))


def same_picture(first: Signature, second: Signature) -> bool:
    """Whether two images show the same picture: the same layout in the same colours, or for a
    near-blank image, almost exactly the same colours."""
    blank = first.blank or second.blank
    return pixel_difference(first, second) <= (SAME_BLANK if blank else SAME_COLOURS)
