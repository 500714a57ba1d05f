"""Anomaly heat-map images: the map, scaled to the threshold, over the inspected image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

MIN_SIDE = 256


def _colour(t: np.ndarray) -> np.ndarray:
    """Blue (0) through green and yellow to red (1 and above): red means above threshold."""
    t = np.clip(t, 0.0, 1.0)[..., None]
    stops = np.array([[0, 0, 255], [0, 200, 0], [255, 220, 0], [255, 0, 0]], np.float64)
    pos = t * (len(stops) - 1)
    low = np.floor(pos).astype(int).clip(0, len(stops) - 2)
    frac = pos - low
    return stops[low[..., 0]] * (1 - frac) + stops[low[..., 0] + 1] * frac


def render(image: Image.Image, anomaly_map: np.ndarray, threshold: float) -> Image.Image:
    """The model's view of the image (at least MIN_SIDE on its shorter side) blended with the
    coloured anomaly map, which leaves out the border cells the model ignores."""
    scale = max(1.0, MIN_SIDE / min(image.size))
    size = (round(image.width * scale), round(image.height * scale))
    base = np.asarray(image.resize(size), np.float64)
    level = np.asarray(anomaly_map, np.float64).squeeze() / threshold
    # Half the threshold and below shows blue: only cells near or above the threshold stand out.
    t = np.clip((level - 0.5) / 0.5, 0.0, 1.0)
    heat = Image.fromarray(_colour(t).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    blended = 0.55 * base + 0.45 * np.asarray(heat, np.float64)
    return Image.fromarray(blended.round().astype(np.uint8))


def write_heatmap(
    path: str | Path, image: Image.Image, anomaly_map: np.ndarray, threshold: float
) -> Path:
    """``image`` is the preprocessed model input (``open_image``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    render(image, anomaly_map, threshold).save(path, format="PNG")
    return path
