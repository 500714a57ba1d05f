"""Training separates good from defective parts; the ONNX model is valid, small, deterministic."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from mes_vision import Inspector, ModelCard, synthetic, train_model
from mes_vision.metrics import auroc
from tests.vision.conftest import IMAGE_PX, SMALL, SURFACE


@pytest.fixture(scope="module")
def inspector(model_dir) -> Inspector:
    return Inspector.load(model_dir)


def test_held_out_good_and_obvious_defects_are_separated(inspector):
    # Given images never seen in training: new good parts and obvious defects of every kind
    good = [synthetic.good_image(SURFACE, 500 + i, IMAGE_PX) for i in range(10)]
    defects = [
        synthetic.defect_image(SURFACE, kind, 600 + i, severity=1.0, size=IMAGE_PX)
        for i, kind in enumerate(synthetic.DEFECT_KINDS * 2)
    ]
    # When they are scored
    good_scores = np.array([v.score for v in inspector.score_batch(good)])
    defect_scores = np.array([v.score for v in inspector.score_batch(defects)])
    # Then defects rank above good parts, and the threshold passes most good parts
    assert auroc(good_scores, defect_scores) >= 0.9
    assert np.mean(good_scores <= inspector.threshold) >= 0.8
    assert np.mean(defect_scores > inspector.threshold) >= 0.7


def test_model_is_valid_onnx_that_onnxruntime_loads(model_dir):
    model = onnx.load(model_dir / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version <= 13
    session = ort.InferenceSession(str(model_dir / "model.onnx"))
    assert [o.name for o in session.get_outputs()] == ["score", "anomaly_map", "level_peaks"]
    x = np.zeros((3, 64, 64, 3), np.float32)
    score, anomaly_map, _ = session.run(None, {"image": x})
    assert score.shape == (3,)
    # One cell per 4 pixels, less the border cell at each edge
    assert anomaly_map.shape == (3, 1, 14, 14)
    # The score is the maximum of the map: the whole scoring is inside the graph.
    np.testing.assert_allclose(score, anomaly_map.max(axis=(1, 2, 3)))


def test_model_file_stays_under_20_mb_at_the_default_size(tmp_path):
    # The default input size is what ships; the test config is smaller.
    synthetic.write_dataset(tmp_path / "ds", SURFACE, n_good=10, size=224)
    train_model(tmp_path / "ds", tmp_path / "model")
    size = (tmp_path / "model" / "model.onnx").stat().st_size
    assert 0 < size < 20 * 1024 * 1024


def test_model_card_records_threshold_validation_counts_and_hash(model_dir, dataset):
    card = ModelCard.load(model_dir)
    assert card.format_version == 2
    assert card.preprocessing["input_size"] == [64, 64] and card.preprocessing["roi"] is None
    assert card.validation["scorer"] in {"position", "global", "bank"}
    assert set(card.validation["scorers"]) == {"position", "global", "bank"}
    assert 0 < card.validation["expected_false_reject_rate"] < 0.05
    assert len(card.validation["good_scores"]) == 16
    assert card.images["good_used"] == 16 and card.images["defect_used"] == 2
    assert 0.0 <= card.validation["false_reject_rate"] <= 1.0
    assert card.validation["auroc"] is not None and card.validation["defect_recall"] is not None
    assert card.threshold > card.validation["good_score"]["min"]
    assert len(card.dataset_sha256) == 64 and card.training_seconds > 0


def test_training_twice_gives_identical_scores(dataset, model_dir, tmp_path):
    # Given the same data and settings trained a second time
    train_model(dataset, tmp_path / "again", SMALL)
    first, second = Inspector.load(model_dir), Inspector.load(tmp_path / "again")
    images = [synthetic.defect_image(SURFACE, "stain", 3, 0.5, IMAGE_PX)] + [
        synthetic.good_image(SURFACE, 900 + i, IMAGE_PX) for i in range(3)
    ]
    # Then the models are byte-identical and score identically, and rescoring repeats exactly
    assert first.card.model_sha256 == second.card.model_sha256
    assert first.card.dataset_sha256 == second.card.dataset_sha256
    scores = [v.score for v in first.score_batch(images)]
    assert scores == [v.score for v in second.score_batch(images)]
    assert scores == [v.score for v in first.score_batch(images)]


def test_path_bytes_and_pil_image_give_the_same_verdict(inspector, tmp_path):
    image = synthetic.defect_image(SURFACE, "foreign", 11, 1.0, IMAGE_PX)
    path = tmp_path / "part.png"
    image.save(path)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    results = [inspector.score_image(s) for s in (path, buffer.getvalue(), image)]
    assert len({r.score for r in results}) == 1
    assert results[0].verdict in {"GOOD", "DEFECT"}
    assert results[0].threshold == inspector.threshold
    assert results[0].anomaly_map is None
    mapped = inspector.score_image(image, with_map=True)
    assert mapped.anomaly_map.shape == (14, 14)
