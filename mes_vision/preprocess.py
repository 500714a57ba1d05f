"""The fixed preprocessing in front of the ONNX graph: decode, reduce, resize, to float.

The graph takes ``float32[N, size, size, 3]`` holding RGB pixel values 0..255; everything
after that (scaling, features, scoring) lives inside the graph.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mes_vision.errors import ImageError

ImageSource = str | os.PathLike | bytes | Image.Image

# Bilinear after a JPEG draft keeps decode+resize cheap; the same filter is used in training.
RESAMPLE = Image.Resampling.BILINEAR


def open_image(source: ImageSource, size: int) -> Image.Image:
    """Decode ``source`` to an RGB image of ``size`` x ``size``.

    JPEGs are decoded at a reduced DCT scale (``Image.draft``) no smaller than ``size``, which
    skips most of the decoding work for large camera images.
    """
    try:
        if isinstance(source, Image.Image):
            image = source
        else:
            stream = io.BytesIO(source) if isinstance(source, bytes) else Path(source).open("rb")
            with stream:
                image = Image.open(stream)
                if image.format == "JPEG":
                    image.draft("RGB", (size, size))
                image.load()
        if image.mode != "RGB":
            image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), RESAMPLE)
        return image
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
