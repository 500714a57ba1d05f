"""The fixed preprocessing in front of the ONNX graph: decode, orient, crop, resize, to float.

One path for every file format: a full decode (no JPEG draft mode, whose DCT scaling would make
a JPEG differ from the same picture as PNG), the EXIF orientation applied, the region of
interest cut out, then one antialiased resize that keeps the aspect ratio (the model input has
the region's aspect; any difference is cropped from the centre, never squashed). The graph
takes ``float32[N, height, width, 3]`` holding RGB pixel values 0..255.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mes_vision.errors import ImageError

ImageSource = str | os.PathLike | bytes | Image.Image

# Antialiased: Pillow widens the filter by the reduction factor, so fine sensor grain and JPEG
# blocking average out the same way whatever the file format.
RESAMPLE = Image.Resampling.BILINEAR
# Large reductions start with a box average to within this factor of the size (Pillow's
# reducing_gap): the same on every format, and half the time of a bilinear pass from full size.
REDUCING_GAP = 2.0


@dataclass(frozen=True)
class Framing:
    """Where the model looks: ``roi`` (left, top, width, height) in the oriented camera frame,
    or None for the whole frame, and the model input ``size`` (width, height)."""

    size: tuple[int, int]
    roi: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.roi is not None:
            left, top, width, height = self.roi
            if left < 0 or top < 0 or width < 1 or height < 1:
                raise ValueError(f"region of interest {self.roi} must be left, top >= 0, size > 0")


def decode(source: ImageSource) -> Image.Image:
    """The whole frame, EXIF orientation applied, RGB; raises ``ImageError`` naming the source."""
    try:
        if isinstance(source, Image.Image):
            image = source
        else:
            stream = io.BytesIO(source) if isinstance(source, bytes) else Path(source).open("rb")
            with stream:
                image = Image.open(stream)
                image.load()
        image = ImageOps.exif_transpose(image)
        return image if image.mode == "RGB" else image.convert("RGB")
    except FileNotFoundError as exc:
        raise ImageError(f"{source}: no such file") from exc
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
    ) as exc:
        raise ImageError(f"{_name(source)}: cannot decode image ({exc})") from exc


def region(image: Image.Image, roi: tuple[int, int, int, int] | None, source=None) -> Image.Image:
    """The region of interest of a decoded frame; ``ImageError`` when the frame lacks it."""
    if roi is None:
        return image
    left, top, width, height = roi
    if left + width > image.width or top + height > image.height:
        raise ImageError(
            f"{_name(source or image)}: frame of {image.width}x{image.height} does not contain "
            f"the region of interest {width}x{height} at ({left}, {top})"
        )
    return image.crop((left, top, left + width, top + height))


def fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` resized to cover ``size`` with its aspect ratio kept, then centre-cropped."""
    width, height = size
    if image.size == (width, height):
        return image
    scale = max(width / image.width, height / image.height)
    covered = (
        max(width, math.ceil(image.width * scale)),
        max(height, math.ceil(image.height * scale)),
    )
    resized = image.resize(covered, RESAMPLE, reducing_gap=REDUCING_GAP)
    left, top = (covered[0] - width) // 2, (covered[1] - height) // 2
    return resized.crop((left, top, left + width, top + height)) if covered != size else resized


def open_image(source: ImageSource, framing: Framing) -> Image.Image:
    """Decode ``source`` and bring its region of interest to the model input size."""
    return fit(region(decode(source), framing.roi, source), framing.size)


def to_tensor(images: list[Image.Image]) -> np.ndarray:
    """Stack RGB images into the graph input, ``float32[N, H, W, 3]`` with values 0..255.

    Each image's bytes are converted straight into its slot of one preallocated batch, with
    no intermediate float array per image and no stacking copy.
    """
    if not images:
        raise ValueError("to_tensor needs at least one image")
    width, height = images[0].size
    batch = np.empty((len(images), height, width, 3), np.float32)
    for slot, image in zip(batch, images, strict=True):
        if image.size != (width, height):
            raise ValueError(f"image of size {image.size} in a batch of {(width, height)}")
        slot[...] = np.asarray(image)
    return batch


def _name(source: ImageSource) -> str:
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return "<PIL image>"
    return str(source)
