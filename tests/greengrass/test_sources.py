"""The inbox rule (never a half-written file) and the trigger message."""

from __future__ import annotations

import json
import os

import pytest
from quality_inspection.sources import FolderWatcher, TriggerError, parse_trigger, part_id_from_name


class Clock:
    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns


def touch(path, data: bytes, mtime_ns: int) -> None:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def watcher(tmp_path):
    clock = Clock()
    clock.ns = 10_000_000_000
    return FolderWatcher(tmp_path, settle_ms=500, clock_ns=clock), clock


def test_a_file_is_taken_only_when_it_held_still_for_two_polls_and_settled(tmp_path, watcher):
    w, clock = watcher
    touch(tmp_path / "a.png", b"x" * 10, clock.ns)
    assert w.poll() == []  # first sight
    clock.ns += 200_000_000
    assert w.poll() == []  # unchanged, but written only 200 ms ago
    touch(tmp_path / "a.png", b"x" * 20, clock.ns)  # the writer appends
    clock.ns += 600_000_000
    assert w.poll() == []  # changed since the last poll
    clock.ns += 100_000_000
    (job,) = w.poll()
    assert (job.path.name, job.part_id, job.owned) == ("a.png", "a", True)


def test_temp_names_hidden_files_folders_and_non_images_are_never_taken(tmp_path, watcher):
    w, clock = watcher
    for name in (".a.png", "~b.png", "c.png.part", "d.tmp", "e.txt", "f.png.filepart"):
        touch(tmp_path / name, b"data", 0)
    (tmp_path / "dir.png").mkdir()
    (tmp_path / ".hidden-link.png").symlink_to(tmp_path / "e.txt")
    for _ in range(3):
        clock.ns += 10**9
        assert w.poll() == []


def test_an_empty_file_and_a_symlink_are_rejected_jobs_with_a_reason(tmp_path, watcher):
    # Given an image name that is a symbolic link (even to a good image) and one that is empty
    w, clock = watcher
    touch(tmp_path / "real.txt", b"data", 0)
    (tmp_path / "link.png").symlink_to(tmp_path / "real.txt")
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    touch(tmp_path / "empty.png", b"", 0)
    # Then links are rejected at once, never followed; the empty file once it has settled
    first = {j.path.name: j.reject_reason for j in w.poll()}
    assert first == {
        "link.png": "a symbolic link, not followed",
        "dangling.jpg": "a symbolic link, not followed",
    }
    clock.ns += 10**9
    second = {j.path.name: j.reject_reason for j in w.poll()}
    assert second["empty.png"] == "an empty file (0 bytes)"
    # And rejecting moves the entry itself (not a link's target) to rejected/
    (job,) = [j for j in w.poll() if j.path.name == "link.png"]
    moved = w.reject(job)
    assert moved == tmp_path / "rejected" / "link.png" and moved.is_symlink()
    assert (tmp_path / "real.txt").read_bytes() == b"data"
    assert "link.png" not in {j.path.name for j in w.poll()}


def test_ready_files_come_oldest_first(tmp_path, watcher):
    w, clock = watcher
    touch(tmp_path / "b.png", b"1", 3)
    touch(tmp_path / "a.png", b"1", 5)
    touch(tmp_path / "c.jpg", b"1", 1)
    w.poll()
    assert [j.path.name for j in w.poll()] == ["c.jpg", "b.png", "a.png"]


def test_part_id_is_the_file_name_without_its_suffix():
    assert part_id_from_name("P-123.png") == "P-123"
    assert part_id_from_name("lot7.P-123.jpeg") == "lot7.P-123"
    assert len(part_id_from_name("x" * 300 + ".png")) == 128


def test_trigger_names_an_image_under_its_root(tmp_path):
    root = tmp_path / "triggered"
    root.mkdir()
    job = parse_trigger(json.dumps({"image_path": "sub/p1.png", "part_id": "P1"}).encode(), root)
    assert (job.path, job.part_id, job.owned) == ((root / "sub/p1.png").resolve(), "P1", False)
    assert parse_trigger(b'{"image_path": "p2.png"}', root).part_id == "p2"


@pytest.mark.parametrize(
    "payload",
    [
        b"{",
        b"[]",
        b'{"image_path": 3}',
        b'{"image_path": "a.png", "part_id": ""}',
        b'{"image_path": "../escape.png"}',
        b'{"image_path": "/etc/passwd"}',
    ],
)
def test_bad_triggers_are_rejected_with_a_reason(tmp_path, payload):
    with pytest.raises(TriggerError):
        parse_trigger(payload, tmp_path)
