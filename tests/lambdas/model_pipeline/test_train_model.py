"""Step 2 under moto: a tiny generated dataset is trained end to end and the model stored."""

import hashlib
import json
import time
from dataclasses import replace

import pytest

from lambdas.model_pipeline import train_model, training, validate_dataset
from lambdas.model_pipeline.errors import DatasetInvalid
from mes_vision import FeatureConfig, ModelCard, TrainConfig, synthetic
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.model_pipeline.conftest import (
    DATASET_BUCKET,
    DATASET_PREFIX,
    MODEL_BUCKET,
    REQUEST,
    put_images,
)

# Small images and few PCA patches: a model in about a second.
FAST = TrainConfig(
    features=replace(
        FeatureConfig(), short_side=64, patches_per_level=1000, bank_sizes=(32, 32, 16)
    ),
    folds=2,
)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """20 good and 3 defective synthetic surfaces, 48 px, generated once."""
    root = tmp_path_factory.mktemp("synthetic")
    return synthetic.write_dataset(root, "cast", n_good=20, n_defect=3, seed=3, size=48)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """The directory the step's temporary files go to, to check it is cleaned up."""
    directory = tmp_path / "scratch"
    directory.mkdir()
    monkeypatch.setattr(training.tempfile, "tempdir", str(directory))
    return directory


@pytest.fixture
def uploaded(aws, images, monkeypatch, scratch):
    monkeypatch.setattr(train_model, "TRAIN_CONFIG", FAST)
    for path in sorted(images.rglob("*.png")):
        key = DATASET_PREFIX + path.relative_to(images).as_posix()
        aws.put_object(Bucket=DATASET_BUCKET, Key=key, Body=path.read_bytes())
    return aws


def state():
    return REQUEST | {"dataset": validate_dataset.lambda_handler(REQUEST, LambdaContext())}


def model_objects(s3):
    return sorted(
        item["Key"] for item in s3.list_objects_v2(Bucket=MODEL_BUCKET).get("Contents", [])
    )


def test_a_model_is_trained_and_stored_under_its_version(uploaded, scratch):
    started = int(time.time())

    result = train_model.lambda_handler(state(), LambdaContext())

    version = result["model_version"]
    major_minor, trained_at = version.rsplit(".", 1)
    assert major_minor == "1.0" and started <= int(trained_at) <= time.time()
    prefix = f"models/berlin/body-line-1/vision-01/{version}/"
    assert result["s3_prefix"] == prefix
    assert model_objects(uploaded) == [prefix + "model.json", prefix + "model.onnx"]

    onnx_bytes = uploaded.get_object(Bucket=MODEL_BUCKET, Key=prefix + "model.onnx")["Body"].read()
    stored = ModelCard.from_json(
        uploaded.get_object(Bucket=MODEL_BUCKET, Key=prefix + "model.json")["Body"].read()
    )
    assert stored.model_sha256 == hashlib.sha256(onnx_bytes).hexdigest()
    assert result["card"] == json.loads(stored.to_json())
    assert result["card"]["images"]["good_used"] == 20
    assert result["card"]["images"]["defect_used"] == 3
    assert result["card"]["validation"]["auroc"] is not None
    json.dumps(result)  # Step Functions can carry it
    assert list(scratch.iterdir()) == []


def test_a_dataset_changed_since_validation_is_refused(uploaded, scratch):
    validated = state()
    put_images(uploaded, "good", 1, start=900)

    with pytest.raises(DatasetInvalid, match="changed since it was validated"):
        train_model.lambda_handler(validated, LambdaContext())

    assert model_objects(uploaded) == []


def test_images_mes_vision_cannot_use_make_the_dataset_invalid(aws, monkeypatch, scratch):
    monkeypatch.setattr(train_model, "TRAIN_CONFIG", FAST)
    put_images(aws, "good", 4)  # named .png, but not images

    with pytest.raises(DatasetInvalid) as raised:
        train_model.lambda_handler(state(), LambdaContext())

    message = str(raised.value)
    assert f"s3://{DATASET_BUCKET}/{DATASET_PREFIX}good: only 0 readable good images" in message
    assert model_objects(aws) == []
    assert list(scratch.iterdir()) == []


def test_an_unexpected_failure_propagates_and_leaves_no_files(uploaded, scratch, monkeypatch):
    def broken(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(training, "train_model", broken)

    with pytest.raises(MemoryError):
        train_model.lambda_handler(state(), LambdaContext())

    assert list(scratch.iterdir()) == []
    assert model_objects(uploaded) == []


def test_a_long_list_of_skipped_images_is_cut_short_in_the_state():
    card = ModelCard(
        threshold=1.0,
        threshold_method="good-only",
        preprocessing={"size": 32},
        features={},
        validation={},
        images={"skipped": {f"good/{i:03d}.png": "truncated" for i in range(50)}},
        training_seconds=1.0,
        dataset_sha256="a",
        model_sha256="b",
        created_at="2026-11-20T10:07:00+00:00",
    )

    data = training.state_card(card)

    assert len(data["images"]["skipped"]) == training.MAX_SKIPPED_IN_STATE
    assert data["images"]["skipped_total"] == 50


def test_the_cameras_region_of_interest_from_the_plant_config_frames_the_model(
    aws, plant_file, monkeypatch, scratch, tmp_path
):
    # Given vision-01's camera looks at a 96x64 region of a wider frame
    plant = json.loads(plant_file.read_text())
    for site in plant["sites"]:
        for line in site["lines"]:
            for station in line["stations"]:
                if station["id"] == "vision-01":
                    station["camera"]["roi"] = {"left": 16, "top": 8, "width": 96, "height": 64}
    plant_file.write_text(json.dumps(plant))
    monkeypatch.setattr(train_model, "TRAIN_CONFIG", FAST)
    frames = synthetic.write_dataset(tmp_path / "frames", "cast", n_good=12, seed=4, size=128)
    for path in sorted(frames.rglob("*.png")):
        key = DATASET_PREFIX + path.relative_to(frames).as_posix()
        aws.put_object(Bucket=DATASET_BUCKET, Key=key, Body=path.read_bytes())
    # When the pipeline validates and trains
    validated = state()
    assert validated["dataset"]["roi"] == [16, 8, 96, 64]
    result = train_model.lambda_handler(validated, LambdaContext())
    # Then the model sees that region at its 3:2 aspect
    preprocessing = result["card"]["preprocessing"]
    assert preprocessing["roi"] == [16, 8, 96, 64]
    assert preprocessing["input_size"] == [96, 64]
