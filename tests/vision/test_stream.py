"""``Inspector.score_stream``: pipelined decoding and batched scoring of a camera feed."""

from __future__ import annotations

import io
import math
import threading

import pytest

from mes_vision import Inspector, synthetic
from tests.vision.conftest import IMAGE_PX, SURFACE


@pytest.fixture(scope="module")
def inspector(model_dir) -> Inspector:
    return Inspector.load(model_dir, intra_op_threads=1)


def _jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _sources(count: int) -> list[bytes]:
    images = [
        synthetic.defect_image(SURFACE, "foreign", i, 1.0, IMAGE_PX)
        if i % 3 == 0
        else synthetic.good_image(SURFACE, 700 + i, IMAGE_PX)
        for i in range(count)
    ]
    return [_jpeg(image) for image in images]


@pytest.mark.parametrize(("batch_size", "workers"), [(1, 1), (4, 1), (3, 2)])
def test_stream_gives_one_verdict_per_source_in_order_equal_to_score_image(
    inspector, batch_size, workers
):
    sources = _sources(10)
    expected = [inspector.score_image(s) for s in sources]
    # A generator: the stream reads its sources lazily
    results = list(
        inspector.score_stream((s for s in sources), batch_size=batch_size, workers=workers)
    )
    assert [r.verdict for r in results] == [e.verdict for e in expected]
    assert [r.score for r in results] == pytest.approx([e.score for e in expected], rel=1e-5)
    assert all(r.reason is None and r.threshold == inspector.threshold for r in results)


def test_corrupt_image_in_the_middle_gives_an_error_verdict_and_the_stream_goes_on(inspector):
    sources = _sources(6)
    sources[2] = b"\xff\xd8\xff\xe0" + b"\0" * 20
    sources[4] = b"not an image at all"
    results = list(inspector.score_stream(sources, batch_size=4))
    assert len(results) == 6
    assert [r.verdict for r in results][2] == "ERROR" and results[4].verdict == "ERROR"
    assert math.isnan(results[2].score) and "cannot decode" in results[2].reason
    for i in (0, 1, 3, 5):
        assert results[i].score == pytest.approx(inspector.score_image(sources[i]).score, 1e-5)


def test_a_batch_of_only_corrupt_images_and_an_empty_stream(inspector):
    assert list(inspector.score_stream([])) == []
    results = list(inspector.score_stream([b"x", b"y"], batch_size=2))
    assert [r.verdict for r in results] == ["ERROR", "ERROR"]


def test_stream_maps_match_score_image_and_bad_settings_are_refused(inspector):
    source = _sources(1)[0]
    (result,) = inspector.score_stream([source], with_map=True)
    assert (
        result.anomaly_map.shape == inspector.score_image(source, with_map=True).anomaly_map.shape
    )
    with pytest.raises(ValueError, match="at least 1"):
        list(inspector.score_stream([source], batch_size=0))


def test_stopping_early_leaves_no_worker_running(inspector):
    stream = inspector.score_stream(_sources(12), batch_size=2)
    first = next(stream)
    stream.close()
    assert first.verdict in {"GOOD", "DEFECT"}
    assert not [t for t in threading.enumerate() if t.name.startswith("mes_vision-score")]
