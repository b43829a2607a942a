"""Decode any image file into an RGB picture, or say in a few words why it cannot be used.

One function serves ingestion (validation), embedding, thumbnails and the explorer's upload, so
every stage sees the same pixels: EXIF orientation applied, converted to 8-bit RGB (CMYK,
palette with transparency, 16-bit, greyscale), the first frame of animations, a pixel cap
against decompression bombs, and an optional crop of white borders.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError

WHITE_THRESHOLD = 245  # pixels at least this bright on every channel count as white border


class ImageRejected(Exception):
    """An image that cannot be used; `reason` is short and stable enough to group by."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodeOptions:
    """How images are decoded; the same for every stage of one store."""

    max_pixels: int = 89_478_485
    crop_white_border: bool = False


def open_rgb(
    source: str | Path | BinaryIO, options: DecodeOptions, draft_size: int | None = None
) -> Image.Image:
    """Decode `source` to an 8-bit RGB image or raise ImageRejected.

    `draft_size` lets JPEG decoding skip detail beyond what a consumer needs (e.g. twice the
    model's input size), which is several times faster on large photographs.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ImageRejected("missing file", str(path))
        if path.is_dir():
            raise ImageRejected("not an image", "is a folder")
        if path.stat().st_size == 0:
            raise ImageRejected("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if width * height > options.max_pixels:
                    raise ImageRejected(
                        "too many pixels",
                        f"{width}×{height} exceeds the cap of {options.max_pixels:,}",
                    )
                if draft_size and image.format == "JPEG":
                    image.draft("RGB", (draft_size, draft_size))
                image.load()
                image = ImageOps.exif_transpose(image)
                rgb = to_rgb(image)
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too many pixels", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("not an image", "unrecognised format") from exc
    except OSError as exc:
        if "truncated" in str(exc):
            raise ImageRejected("truncated file", str(exc)) from exc
        raise ImageRejected("corrupt image", str(exc)) from exc
    except (ValueError, SyntaxError, EOFError, TypeError) as exc:
        raise ImageRejected("corrupt image", str(exc)) from exc
    if width == 0 or height == 0:
        raise ImageRejected("empty image", "zero width or height")
    return crop_white_border(rgb) if options.crop_white_border else rgb


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited onto white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        if pixels.max(initial=0) > 255:  # 16-bit (or wider) samples: scale, don't clip
            pixels = pixels / 257.0
        grey = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def crop_white_border(image: Image.Image) -> Image.Image:
    """Crop uniform white margins (products photographed on white); keeps all-white images."""
    white = Image.new("RGB", image.size, (255, 255, 255))
    difference = ImageChops.difference(image, white).convert("L")
    mask = difference.point(lambda value: 255 if value > 255 - WHITE_THRESHOLD else 0)
    box = mask.getbbox()
    return image.crop(box) if box else image
