"""The capture store's bound and the uploader's exactly-once across restarts (S3 under moto)."""

from __future__ import annotations

import pytest
from quality_inspection.captures import UPLOADED_SUFFIX, CaptureStore, capture_name
from quality_inspection.uploader import Backoff, Uploader

from tests.greengrass.conftest import FlakyS3

BUCKET = "acme-datasets"


def add(store, tmp_path, ts: int, label: str = "defect", size: int = 100, part: str = "p"):
    source = tmp_path / f"src-{ts}.png"
    source.write_bytes(bytes([ts % 256]) * size)
    return store.add(source, label, capture_name(ts, f"{part}{ts}", ".png"), move=True)


def names(store):
    return [c.name for c in store.captures()]


def test_bytes_bound_evicts_the_oldest_first(tmp_path):
    store = CaptureStore(tmp_path / "c", max_bytes=350, max_files=100)
    for ts in range(1, 6):
        add(store, tmp_path, ts)
    assert names(store) == [capture_name(ts, f"p{ts}", ".png") for ts in (3, 4, 5)]
    assert store.total_bytes == 300
    on_disk = sorted(p.name for p in (tmp_path / "c" / "defect").iterdir())
    assert on_disk == names(store)


def test_file_bound_evicts_uploaded_captures_before_pending_ones(tmp_path):
    store = CaptureStore(tmp_path / "c", max_bytes=10**6, max_files=3)
    first, second, third = (add(store, tmp_path, ts) for ts in (1, 2, 3))
    store.mark_uploaded(second)
    add(store, tmp_path, 4)
    assert [c.name for c in store.captures()] == [
        first.name,
        third.name,
        capture_name(4, "p4", ".png"),
    ]
    assert not second.path.with_name(second.name + UPLOADED_SUFFIX).exists()
    assert store.evicted_pending == 0
    add(store, tmp_path, 5)  # nothing uploaded left: the oldest pending goes, counted
    assert store.evicted_pending == 1 and first.name not in names(store)


def test_a_capture_larger_than_the_bound_is_not_kept(tmp_path):
    store = CaptureStore(tmp_path / "c", max_bytes=50, max_files=10)
    assert add(store, tmp_path, 1, size=100) is None
    assert store.captures() == [] and store.total_bytes == 0


def test_low_free_space_evicts_whatever_the_bounds_say(tmp_path):
    free = {"bytes": 10_000}
    store = CaptureStore(
        tmp_path / "c",
        max_bytes=10**9,
        max_files=10**6,
        min_free_bytes=1_000,
        free_bytes=lambda _: free["bytes"],
    )
    for ts in range(1, 4):
        add(store, tmp_path, ts)
    assert len(store.captures()) == 3
    free["bytes"] = 500  # something else filled the disk
    add(store, tmp_path, 4)
    assert store.captures() == []  # everything evicted, the newest too: the disk comes first


def test_restart_rescans_and_cleans_half_written_captures_and_orphan_markers(tmp_path):
    store = CaptureStore(tmp_path / "c", max_bytes=10**6, max_files=100)
    a, b = add(store, tmp_path, 1), add(store, tmp_path, 2, label="good")
    store.mark_uploaded(a)
    (tmp_path / "c" / "defect" / ".incoming-x.png").write_bytes(b"half")
    (tmp_path / "c" / "good" / ("gone.png" + UPLOADED_SUFFIX)).write_bytes(b"")
    again = CaptureStore(tmp_path / "c", max_bytes=10**6, max_files=100)
    by_name = {c.name: c for c in again.captures()}
    assert set(by_name) == {a.name, b.name}
    assert by_name[a.name].uploaded and not by_name[a.name].recovered
    assert not by_name[b.name].uploaded and by_name[b.name].recovered
    assert sorted(p.name for p in (tmp_path / "c").rglob("*") if p.is_file()) == sorted(
        [a.name, a.name + UPLOADED_SUFFIX, b.name]
    )


def test_unknown_label_is_refused(tmp_path):
    store = CaptureStore(tmp_path / "c", max_bytes=100, max_files=1)
    with pytest.raises(ValueError, match="label"):
        add(store, tmp_path, 1, label="maybe")


def uploader(store, client):
    return Uploader(
        store,
        lambda: client,
        bucket=BUCKET,
        prefix="datasets",
        site="berlin",
        line="body-line-1",
        station="vision-01",
        backoff=Backoff(0.01, 0.02),
    )


def test_outage_keeps_captures_until_uploaded_once(tmp_path, s3):
    store = CaptureStore(tmp_path / "c", max_bytes=10**6, max_files=100)
    captures = [add(store, tmp_path, ts, label=lbl) for ts, lbl in ((1, "defect"), (2, "good"))]
    add(store, tmp_path, 3, label="error")  # kept for diagnosis, never uploaded
    flaky = FlakyS3(s3)
    flaky.down = True
    up = uploader(store, flaky)
    assert up.drain() == 2 and all(c.path.exists() for c in captures)
    flaky.down = False
    assert up.drain() == 0
    assert flaky.puts == {
        "datasets/berlin/body-line-1/vision-01/defect/" + captures[0].name: 1,
        "datasets/berlin/body-line-1/vision-01/good/" + captures[1].name: 1,
    }
    head = s3.head_object(
        Bucket=BUCKET, Key="datasets/berlin/body-line-1/vision-01/good/" + captures[1].name
    )
    assert head["Metadata"] == {"site": "berlin", "line": "body-line-1", "station": "vision-01"}
    assert head["ContentType"] == "image/png"
    # A restart finds them uploaded and uploads nothing
    again = CaptureStore(tmp_path / "c", max_bytes=10**6, max_files=100)
    assert uploader(again, flaky).drain() == 0
    assert set(flaky.puts.values()) == {1}


def test_crash_between_upload_and_marker_does_not_upload_again(tmp_path, s3):
    # Given a capture that reached S3, but whose marker a crash prevented
    store = CaptureStore(tmp_path / "c", max_bytes=10**6, max_files=100)
    capture = add(store, tmp_path, 1)
    flaky = FlakyS3(s3)
    uploader(store, flaky).drain()
    capture.path.with_name(capture.name + UPLOADED_SUFFIX).unlink()
    # When the component restarts
    again = CaptureStore(tmp_path / "c", max_bytes=10**6, max_files=100)
    (recovered,) = again.pending()
    assert recovered.recovered
    # Then a HEAD finds the object, the marker is written, and no second PUT is made
    assert uploader(again, flaky).drain() == 0
    assert flaky.puts == {f"datasets/berlin/body-line-1/vision-01/defect/{capture.name}": 1}
    assert capture.path.with_name(capture.name + UPLOADED_SUFFIX).exists()


def test_recovered_capture_that_never_reached_s3_is_uploaded(tmp_path, s3):
    store = CaptureStore(tmp_path / "c", max_bytes=10**6, max_files=100)
    capture = add(store, tmp_path, 1)
    again = CaptureStore(tmp_path / "c", max_bytes=10**6, max_files=100)
    flaky = FlakyS3(s3)
    assert uploader(again, flaky).drain() == 0
    assert flaky.puts == {f"datasets/berlin/body-line-1/vision-01/defect/{capture.name}": 1}


def test_backoff_grows_to_its_cap_with_jitter():
    backoff = Backoff(base_s=1, max_s=8, rng=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    backoff.reset()
    low = Backoff(base_s=1, max_s=8, rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(3)] == [0.5, 1, 2]
