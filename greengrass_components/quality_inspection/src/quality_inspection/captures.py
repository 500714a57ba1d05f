"""The bounded local capture directory: images kept for retraining until they are uploaded.

Layout: ``{dir}/{label}/{ts_ms:013d}_{part_id}{ext}`` with label ``good``, ``defect`` or
``error`` (kept for diagnosis, never uploaded). An upload is recorded by an empty marker file
``<name>.uploaded`` beside the image, written after S3 accepted it, so it survives restarts.

The bound (bytes, files, free space) is enforced on every add: uploaded captures are evicted
first, oldest first, because they are safe in S3; then, if still over, the oldest pending ones,
with a warning, because the disk must never fill.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

LABELS = ("good", "defect", "error")
UPLOADED_SUFFIX = ".uploaded"
TMP_PREFIX = ".incoming-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def capture_name(ts_ms: int, part_id: str, ext: str) -> str:
    safe = _UNSAFE.sub("_", part_id).strip("._") or "part"
    return f"{ts_ms:013d}_{safe[:100]}{ext.lower()}"


@dataclass
class Capture:
    label: str
    name: str
    path: Path
    size: int
    uploaded: bool = False
    # Found pending at start-up: a crash may have come between the upload and its marker.
    recovered: bool = False
    sort_key: tuple[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.sort_key = (self.name, self.label)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CaptureStore:
    """Thread-safe: the inspection loop adds and evicts, the uploader marks."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        max_files: int,
        min_free_bytes: int = 0,
        free_bytes: Callable[[Path], int] | None = None,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.min_free_bytes = min_free_bytes
        self._free_bytes = free_bytes or (lambda p: shutil.disk_usage(p).free)
        self._lock = threading.Lock()
        self._captures: dict[tuple[str, str], Capture] = {}
        self._bytes = 0
        self.added = threading.Event()  # set on every add; the uploader waits on it
        self.evicted_pending = 0
        for label in LABELS:
            (root / label).mkdir(parents=True, exist_ok=True)
        self._scan()

    def _scan(self) -> None:
        for label in LABELS:
            folder = self.root / label
            names = {p.name for p in folder.iterdir()}
            for name in names:
                path = folder / name
                if name.startswith(TMP_PREFIX):
                    path.unlink(missing_ok=True)  # an add that a crash cut short
                elif name.endswith(UPLOADED_SUFFIX):
                    if name[: -len(UPLOADED_SUFFIX)] not in names:
                        path.unlink(missing_ok=True)  # marker of an evicted image
                else:
                    uploaded = f"{name}{UPLOADED_SUFFIX}" in names
                    capture = Capture(
                        label, name, path, path.stat().st_size, uploaded, recovered=not uploaded
                    )
                    self._captures[capture.sort_key] = capture
                    self._bytes += capture.size
        log.info("capture store %s: %d captures, %d pending", self.root, *self._counts())

    def _counts(self) -> tuple[int, int]:
        return len(self._captures), sum(not c.uploaded for c in self._captures.values())

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def captures(self) -> list[Capture]:
        with self._lock:
            return sorted(self._captures.values(), key=lambda c: c.sort_key)

    def pending(self, labels: tuple[str, ...] = ("good", "defect")) -> list[Capture]:
        """Captures still to upload, oldest first."""
        return [c for c in self.captures() if not c.uploaded and c.label in labels]

    def add(self, source: Path, label: str, name: str, *, move: bool) -> Capture | None:
        """Keep ``source`` as capture ``label/name``; returns None if the bound leaves no room.

        ``move`` takes the file (the inbox is ours); otherwise it is copied. Written under a
        temp name and renamed, so a crash never leaves half a capture.
        """
        if label not in LABELS:
            raise ValueError(f"unknown capture label {label!r}")
        dest = self.root / label / name
        tmp = dest.with_name(f"{TMP_PREFIX}{name}")
        if move:
            try:
                os.replace(source, tmp)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self._copy(source, tmp)  # another file system: copy, then let go of the source
                source.unlink()
        else:
            self._copy(source, tmp)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
        capture = Capture(label, name, dest, dest.stat().st_size)
        with self._lock:
            previous = self._captures.pop(capture.sort_key, None)
            self._bytes -= previous.size if previous else 0
            self._captures[capture.sort_key] = capture
            self._bytes += capture.size
            self._enforce_bound()
            kept = capture.sort_key in self._captures
        if kept:
            self.added.set()
            return capture
        return None

    @staticmethod
    def _copy(source: Path, dest: Path) -> None:
        with source.open("rb") as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())

    def _over_bound(self) -> bool:
        if len(self._captures) > self.max_files:
            return True
        if self._bytes > self.max_bytes:
            return True
        return bool(self.min_free_bytes) and self._free_bytes(self.root) < self.min_free_bytes

    def _enforce_bound(self) -> None:
        while self._captures and self._over_bound():
            ordered = sorted(self._captures.values(), key=lambda c: c.sort_key)
            victim = next((c for c in ordered if c.uploaded), ordered[0])
            if not victim.uploaded and victim.label != "error":
                self.evicted_pending += 1
                log.warning("capture bound reached: evicting %s before upload", victim.path)
            self._remove(victim)

    def _remove(self, capture: Capture) -> None:
        del self._captures[capture.sort_key]
        self._bytes -= capture.size
        capture.path.unlink(missing_ok=True)
        capture.path.with_name(capture.name + UPLOADED_SUFFIX).unlink(missing_ok=True)

    def mark_uploaded(self, capture: Capture) -> None:
        """Record the upload durably; a capture evicted meanwhile is left alone."""
        with self._lock:
            if self._captures.get(capture.sort_key) is not capture:
                return
            marker = capture.path.with_name(capture.name + UPLOADED_SUFFIX)
            with marker.open("wb") as f:
                os.fsync(f.fileno())
            _fsync_dir(marker.parent)
            capture.uploaded = True
            capture.recovered = False

    def read(self, capture: Capture) -> bytes | None:
        """The capture's bytes, or None if it was evicted."""
        try:
            return capture.path.read_bytes()
        except FileNotFoundError:
            return None
