"""Step 1 under moto: the station and its dataset are checked and the content hash fixed."""

import pytest

from lambdas.model_pipeline import validate_dataset
from lambdas.model_pipeline.errors import DatasetInvalid
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.model_pipeline.conftest import (
    DATASET_BUCKET,
    DATASET_PREFIX,
    REQUEST,
    put_images,
)


def validate(**overrides):
    return validate_dataset.lambda_handler(REQUEST | overrides, LambdaContext())


def test_a_complete_dataset_is_summarised(aws):
    put_images(aws, "good", 4)
    put_images(aws, "good", 1, suffix=".JPEG", start=10)  # extensions are case-insensitive
    put_images(aws, "defect", 2, suffix=".jpg")

    summary = validate()

    assert summary == {
        "bucket": DATASET_BUCKET,
        "prefix": DATASET_PREFIX,
        "good_images": 5,
        "defect_images": 2,
        "content_hash": summary["content_hash"],
        "roi": None,  # the demo plant's camera sees the whole frame
    }
    assert len(summary["content_hash"]) == 64


def test_files_that_are_not_images_or_not_in_the_folder_do_not_count(aws):
    put_images(aws, "good", 2)
    put_images(aws, "good", 3, suffix=".txt")
    put_images(aws, "good/old", 3)  # mes_vision reads only the folder itself
    put_images(aws, "defect", 1, suffix=".bmp")
    aws.put_object(Bucket=DATASET_BUCKET, Key=f"{DATASET_PREFIX}good.png", Body=b"x")

    with pytest.raises(DatasetInvalid) as raised:
        validate()

    message = str(raised.value)
    assert f"s3://{DATASET_BUCKET}/{DATASET_PREFIX}good/ has 2 images" in message
    assert "at least 3 good images" in message


def test_a_missing_good_folder_is_named(aws):
    put_images(aws, "defect", 5)

    with pytest.raises(DatasetInvalid, match=f"{DATASET_PREFIX}good/ is missing or has no"):
        validate()


def test_defect_images_are_optional(aws):
    put_images(aws, "good", 3)

    assert validate()["defect_images"] == 0


@pytest.mark.parametrize(
    ("station", "message"),
    [
        ("vision-99", "no station berlin/body-line-1/vision-99"),
        ("press-01", "press station, not camera_inspection"),
    ],
)
def test_only_a_camera_station_of_the_plant_gets_a_model(aws, station, message):
    put_images(aws, "good", 3)

    with pytest.raises(DatasetInvalid, match=message):
        validate(station=station)


def test_a_malformed_request_is_invalid_not_a_crash(aws):
    with pytest.raises(DatasetInvalid, match="invalid training request"):
        validate(site="ber/lin")
    with pytest.raises(DatasetInvalid, match="requested_by"):
        validate_dataset.lambda_handler(
            {"site": "berlin", "line": "body-line-1", "station": "vision-01"}, LambdaContext()
        )


def test_the_content_hash_is_stable_and_follows_the_images(aws):
    keys = put_images(aws, "good", 3) + put_images(aws, "defect", 1)
    first = validate()["content_hash"]

    assert validate()["content_hash"] == first  # same objects, same hash
    put_images(aws, "good", 1, suffix=".txt")
    assert validate()["content_hash"] == first  # a non-image does not change it

    aws.put_object(Bucket=DATASET_BUCKET, Key=keys[0], Body=b"retouched image")
    changed = validate()["content_hash"]
    assert changed != first

    aws.delete_object(Bucket=DATASET_BUCKET, Key=keys[-1])  # the defect image
    assert validate()["content_hash"] not in (first, changed)
