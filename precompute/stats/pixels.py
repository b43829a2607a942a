"""Pixel agreement of two images: the check that confirms a near-duplicate pair found in a
feature space is a copy of one picture, not two pictures the network sees as alike.

A network's features put different paintings of one series (the same mount, another figure),
the same print in another ink, two canvases of the same layout in other colours, or two
products photographed the same way on a white background (the same model in a shirt of
another pale colour) as close as a re-encoded copy (docs/results.md, *Data quality*). Their
pixels differ. Each image is reduced to small RGB pictures of its centre at several crops; two
images are copies when some pair of crops within `MAX_SCALE` of each other (so a copy with its
borders cut off still lines up) has the same layout (grey correlation ≥ `SAME_LAYOUT`) and, at
that pair, the same colours:
- on the pixels that are not plain white in both (`WHITE`; a catalogue photo's background
  would otherwise dilute any difference), a root-mean-square difference ≤ `SAME_COLOURS`;
- in every patch of `PATCH`² pixels, a difference ≤ `SAME_PATCH` (another logo, a waistband
  of another colour);
- and the mean colour of those pixels moved by ≤ `SAME_TINT` in each channel (the same shirt
  in pale pink and in pale blue).
Crops of the centre leave out the mounts and frames that make a series look alike. A
near-blank canvas has no layout to correlate; a pair with one is a copy only if its colours
agree almost exactly (≤ `SAME_BLANK`).

Measured (docs/results.md, *Data quality*): copies re-encoded at JPEG quality 50, resized to
2/3 or with 3–8% cropped off each side, 150 of each from wikiart_subset and from
fashion_small, reach correlation ≥ 0.98 and differ by at most 6.8 levels (colours), 12.3
(patch) and 3.1 (tint). The crops are 2.5% apart, so a crop of the copy lines up with one of
the original within about 1%; at 5% apart cropped copies differed by up to 14.5 levels.
Among its 34 near-blank paintings, copies differ by at most 1.6 levels and different paintings
by 3.2 or more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

CROPS = tuple(round(0.55 + 0.025 * step, 3) for step in range(15))  # share of each side kept
MAX_SCALE = 1.3  # the largest ratio of two crops compared: copies cropped by up to ~25% match
SIDE = 24  # pixels per side of each small picture
# JPEGs decode at no fewer pixels a side than this: decoded coarser (JPEG's DCT scaling to
# 1/2, 1/4, 1/8), a cropped copy and its original scale differently and differ by up to 17
# levels in a patch, against 7 when both are decoded whole (fashion_small's 224 px photos).
DRAFT = 8 * SIDE
PATCH = 4  # pixels per side of the patches compared one by one (SIDE / PATCH per row)
LOW_CONTRAST = 4.0  # grey levels: a crop whose standard deviation is below this has no layout
WHITE = 235  # a pixel with every channel at least this is plain white background
SAME_LAYOUT = 0.9  # grey correlation from which two crops show the same layout
# Root-mean-square RGB differences (levels of 255) up to which the colours are the same:
SAME_COLOURS = 10.0  # over the pixels not white in both
SAME_PATCH = 16.0  # in each patch
SAME_TINT = 4.5  # the largest move of one channel's mean over the pixels not white in both
SAME_BLANK = 2.4  # over the whole crop, for a pair with a near-blank image
# What decides a pair: a kept result of the check is redone when any of these changes.
SETTINGS = {"crops": CROPS, "max_scale": MAX_SCALE, "side": SIDE, "draft": DRAFT,
            "patch": PATCH, "low_contrast": LOW_CONTRAST, "white": WHITE,
            "same_layout": SAME_LAYOUT,
            "same_colours": SAME_COLOURS, "same_patch": SAME_PATCH, "same_tint": SAME_TINT,
            "same_blank": SAME_BLANK}
_RATIO = np.divide.outer(CROPS, CROPS)
COMPARED = (_RATIO <= MAX_SCALE) & (_RATIO >= 1 / MAX_SCALE)  # which pairs of crops are compared


@dataclass(frozen=True)
class Signature:
    """An image's centre at each crop of `CROPS`: its colours (crops × SIDE² × 3, uint8) and
    its layout (grey pixels centred and scaled to unit length, crops × SIDE², float16; a crop
    without contrast has none). About 43 KB."""

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


@dataclass(frozen=True)
class Difference:
    """How far apart two images' colours are, in levels of 255 (see the module's docstring);
    infinite when no pair of crops shows the same layout."""

    colours: float
    patch: float = 0.0
    tint: float = 0.0


NO_MATCH = Difference(np.inf, np.inf, np.inf)


def pixel_difference(first: Signature, second: Signature) -> Difference:
    """The difference of two images at the pair of crops whose layouts correlate best; with a
    near-blank image, the colours' difference at the pair of crops closest in colour."""
    colours_first = first.colours.astype(np.float32)
    colours_second = second.colours.astype(np.float32)
    if first.blank or second.blank:
        rows, columns = np.nonzero(COMPARED)
        return Difference(float(np.sqrt(((colours_first[rows] - colours_second[columns]) ** 2)
                                        .mean(axis=(1, 2))).min()))
    correlation = np.where(COMPARED & np.outer(first.has_layout, second.has_layout),
                           first.layouts.astype(np.float32) @ second.layouts.T.astype(np.float32),
                           -np.inf)
    i, j = np.unravel_index(np.argmax(correlation), correlation.shape)
    if correlation[i, j] < SAME_LAYOUT:
        return NO_MATCH
    return _difference(colours_first[i], colours_second[j])


def _difference(first: np.ndarray, second: np.ndarray) -> Difference:
    """The difference of two aligned small pictures (SIDE² × 3 colours each)."""
    squared = ((first - second) ** 2).mean(axis=1)  # per pixel
    shown = (first.min(axis=1) < WHITE) | (second.min(axis=1) < WHITE)
    if not shown.any():  # white on white
        return Difference(0.0)
    blocks = SIDE // PATCH
    patches = squared.reshape(blocks, PATCH, blocks, PATCH).mean(axis=(1, 3))
    tint = np.abs(first[shown].mean(axis=0) - second[shown].mean(axis=0)).max()
    return Difference(float(np.sqrt(squared[shown].mean())), float(np.sqrt(patches.max())),
                      float(tint))


def same_picture(first: Signature, second: Signature) -> bool:
    """Whether two images show the same picture: the same layout in the same colours, or for a
    near-blank image, almost exactly the same colours."""
    difference = pixel_difference(first, second)
    if first.blank or second.blank:
        return difference.colours <= SAME_BLANK
    return (difference.colours <= SAME_COLOURS and difference.patch <= SAME_PATCH
            and difference.tint <= SAME_TINT)
