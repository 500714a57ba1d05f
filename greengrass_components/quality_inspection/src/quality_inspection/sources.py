"""Camera sources: a watched inbox folder and trigger messages that name an image path.

The inbox rule, so a partially written file is never read:

* names starting with ``.`` or ``~`` and temp suffixes (``.tmp``, ``.part``, ``.partial``,
  ``.filepart``, ``.crdownload``, ``.writing``) are never taken: a writer that writes under such
  a name and renames it when done is always safe, because a rename is atomic;
* any other image file (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.tif``, ``.tiff``) is taken
  once it is non-empty and its size and mtime were the same on two consecutive polls, and its
  mtime is at least ``settle_ms`` old. A writer that pauses longer than that mid-file must use
  the rename rule.

Files are taken oldest first (mtime, then name), so results come out in arrival order.

An image name that never gives a readable image still gets a result: a symbolic link (never
followed: it could point anywhere) at once, and an empty file once it has settled, each as a
rejected job that the component publishes as an ERROR result and moves to ``rejected/``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
TEMP_SUFFIXES = frozenset({".tmp", ".part", ".partial", ".filepart", ".crdownload", ".writing"})
MAX_PART_ID = 128
REJECTED_DIR = "rejected"


def part_id_from_name(name: str) -> str:
    """The part id of an image file: its name without the last suffix (``P123.png`` → ``P123``)."""
    stem = Path(name).stem or name
    return stem[:MAX_PART_ID]


def is_candidate(name: str) -> bool:
    if name.startswith((".", "~")):
        return False
    suffix = Path(name).suffix.lower()
    return suffix in IMAGE_SUFFIXES and suffix not in TEMP_SUFFIXES


@dataclass(frozen=True)
class ImageJob:
    """One image to inspect. ``owned``: the file is in our inbox and ours to move or delete.
    ``reject_reason``: not an image we read; the result is an ERROR saying why. ``queue_id``:
    a trigger's id in the durable trigger queue, acked once its result is published."""

    path: Path
    part_id: str
    owned: bool
    reject_reason: str | None = None
    queue_id: int | None = None


class FolderWatcher:
    """Poll-based: returns the files of the inbox that are complete by the rule above."""

    def __init__(self, inbox: Path, settle_ms: int, clock_ns=time.time_ns) -> None:
        self.inbox = inbox
        self.settle_ns = settle_ms * 1_000_000
        self._clock_ns = clock_ns
        self._seen: dict[str, tuple[int, int]] = {}

    def poll(self) -> list[ImageJob]:
        now = self._clock_ns()
        ready: list[tuple[int, str, str | None]] = []
        current: dict[str, tuple[int, int]] = {}
        try:
            entries = list(os.scandir(self.inbox))
        except FileNotFoundError:
            log.warning("inbox %s does not exist yet", self.inbox)
            return []
        for entry in entries:
            if not is_candidate(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # renamed or removed between listing and stat
            if entry.is_symlink():
                ready.append((st.st_mtime_ns, entry.name, "a symbolic link, not followed"))
                continue
            if entry.is_dir(follow_symlinks=False):
                continue
            if not entry.is_file(follow_symlinks=False):
                ready.append((st.st_mtime_ns, entry.name, "not a regular file"))
                continue
            signature = (st.st_size, st.st_mtime_ns)
            current[entry.name] = signature
            stable = self._seen.get(entry.name) == signature
            if stable and now - st.st_mtime_ns >= self.settle_ns:
                reason = None if st.st_size > 0 else "an empty file (0 bytes)"
                ready.append((st.st_mtime_ns, entry.name, reason))
        self._seen = current
        ready.sort(key=lambda r: r[:2])
        return [
            ImageJob(self.inbox / name, part_id_from_name(name), True, reject_reason=reason)
            for _, name, reason in ready
        ]

    def reject(self, job: ImageJob) -> Path | None:
        """Move a rejected file (or link) to ``rejected/``; remove it if that fails, so it is
        never taken again. Returns where it went."""
        folder = self.inbox / REJECTED_DIR
        target = folder / job.path.name
        try:
            folder.mkdir(exist_ok=True)
            if os.path.lexists(target):
                target = folder / f"{time.time_ns()}_{job.path.name}"
            os.replace(job.path, target)  # renames a link itself, never its target
            return target
        except OSError:
            log.exception("cannot move %s aside; removing it", job.path)
            with contextlib.suppress(FileNotFoundError):
                job.path.unlink()
            return None

    def forget(self, job: ImageJob) -> None:
        """After a job is done: a new file under the same name must be seen twice again."""
        self._seen.pop(job.path.name, None)


class TriggerError(ValueError):
    pass


def parse_trigger(payload: bytes, root: Path) -> ImageJob:
    """A trigger message: ``{"image_path": "...", "part_id": "..."}`` (part_id optional).

    The camera sends it once the file is complete. The path must lie under ``root``; the file
    is read but stays where it is (captures copy it), since the camera software owns it.
    """
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TriggerError(f"trigger is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("image_path"), str):
        raise TriggerError("trigger needs a string 'image_path'")
    part_id = data.get("part_id")
    if part_id is not None and (not isinstance(part_id, str) or not part_id):
        raise TriggerError("'part_id' must be a non-empty string")
    path = Path(data["image_path"])
    if not path.is_absolute():
        path = root / path
    resolved = Path(os.path.realpath(path))
    if not resolved.is_relative_to(os.path.realpath(root)):
        raise TriggerError(f"image_path {str(path)!r} is outside {root}")
    return ImageJob(resolved, (part_id or part_id_from_name(resolved.name))[:MAX_PART_ID], False)
