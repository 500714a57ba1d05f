"""The expert's dataset on disk: ``good/`` and optionally ``defect/`` images."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from mes_vision.errors import DatasetError, ImageError
from mes_vision.preprocess import decode, region

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
GOOD_DIR = "good"
DEFECT_DIR = "defect"
# Below this the model of "good" and its held-out threshold are guesses, not estimates.
MIN_GOOD_IMAGES = 10


@dataclass
class LoadedSet:
    """The usable images of one class, their paths, and what was skipped or resized."""

    images: list[Image.Image] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    source_sizes: Counter = field(default_factory=Counter)


@dataclass
class Dataset:
    root: Path
    good: LoadedSet
    defect: LoadedSet
    sha256: str

    @property
    def mixed_sizes(self) -> bool:
        return len(self.good.source_sizes + self.defect.source_sizes) > 1

    @property
    def region_size(self) -> tuple[int, int]:
        """The most common (width, height) of the good images' regions of interest."""
        sizes = Counter(image.size for image in self.good.images)
        return sizes.most_common(1)[0][0]


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name so every run sees the same order."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def content_hash(root: Path, files: list[Path]) -> str:
    """sha256 over the sorted relative paths and bytes of ``files``."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load_dataset(
    root: str | Path,
    roi: tuple[int, int, int, int] | None = None,
    min_good: int = MIN_GOOD_IMAGES,
) -> Dataset:
    """Read and decode the dataset, cut to ``roi``, skipping unreadable images with a warning.

    Raises ``DatasetError`` naming the path when ``good/`` is missing or empty, or when fewer
    than ``min_good`` good images can be decoded.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset directory {root} does not exist")
    good_dir = root / GOOD_DIR
    good_files = image_files(good_dir)
    if not good_dir.is_dir():
        raise DatasetError(f"{good_dir} is missing: put images of good parts there")
    if not good_files:
        raise DatasetError(f"{good_dir} holds no PNG or JPEG images")
    defect_files = image_files(root / DEFECT_DIR)
    good = _load(root, good_files, roi)
    if len(good.images) < min_good:
        raise DatasetError(
            f"{good_dir}: only {len(good.images)} readable good images "
            f"({len(good.skipped)} skipped), at least {min_good} are needed"
        )
    defect = _load(root, defect_files, roi)
    return Dataset(root, good, defect, content_hash(root, good_files + defect_files))


def _load(root: Path, files: list[Path], roi) -> LoadedSet:
    loaded = LoadedSet()
    for path in files:
        relative = path.relative_to(root).as_posix()
        try:
            frame = decode(path)
            source_size = frame.size
            image = region(frame, roi, path)
        except (ImageError, OSError, SyntaxError, ValueError) as exc:
            log.warning("skipping unreadable image %s: %s", relative, exc)
            loaded.skipped[relative] = str(exc)
            continue
        loaded.images.append(image)
        loaded.paths.append(relative)
        loaded.source_sizes[f"{source_size[0]}x{source_size[1]}"] += 1
    return loaded
