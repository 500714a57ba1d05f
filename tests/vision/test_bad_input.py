"""Bad datasets and model directories give clear errors and leave nothing half-written."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from PIL import Image

from mes_vision import (
    DatasetError,
    Inspector,
    ModelCard,
    ModelFormatError,
    ModelNotFoundError,
    VisionError,
    train_model,
)
from tests.vision.conftest import SMALL, write_good


def test_missing_good_folder_is_named(tmp_path):
    (tmp_path / "defect").mkdir()
    with pytest.raises(DatasetError, match=str(tmp_path / "good")):
        train_model(tmp_path, tmp_path / "model", SMALL)
    assert not (tmp_path / "model").exists()


def test_missing_dataset_directory_is_named(tmp_path):
    with pytest.raises(DatasetError, match="nowhere"):
        train_model(tmp_path / "nowhere", tmp_path / "model", SMALL)


def test_empty_good_folder_is_named(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match=r"good holds no PNG or JPEG"):
        train_model(tmp_path, tmp_path / "model", SMALL)


def test_corrupt_images_are_skipped_with_a_warning_and_recorded(tmp_path, caplog):
    write_good(tmp_path / "good", 12)
    (tmp_path / "good" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "good" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 20)
    with caplog.at_level(logging.WARNING, logger="mes_vision"):
        card = train_model(tmp_path, tmp_path / "model", SMALL)
    assert card.images["good_used"] == 12
    assert set(card.images["skipped"]) == {"good/broken.png", "good/truncated.jpg"}
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "good/broken.png" in warned and "good/truncated.jpg" in warned


def test_too_few_readable_good_images_is_an_error(tmp_path):
    write_good(tmp_path / "good", 8)
    for i in range(4):
        (tmp_path / "good" / f"bad{i}.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"only 8 readable good images \(4 skipped\).*10"):
        train_model(tmp_path, tmp_path / "model", SMALL)
    assert not (tmp_path / "model").exists()


def test_mixed_sizes_and_grey_images_are_resized_and_recorded(tmp_path):
    paths = write_good(tmp_path / "good", 12)
    for path in paths[:3]:
        Image.open(path).resize((120, 80)).save(path)
    Image.open(paths[3]).convert("L").save(paths[3])
    card = train_model(tmp_path, tmp_path / "model", SMALL)
    assert card.images["mixed_sizes"] is True
    assert card.images["source_sizes"] == {"120x80": 3, "96x96": 9}
    assert card.images["resized_to"] == "64x64"


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (3, r"version 3, newer than version 2.*upgrade mes_vision"),
        # A version-1 model (128 px squashed input, no region of interest) must be retrained
        (1, r"version 1, older than version 2.*retrain"),
    ],
)
def test_a_model_of_another_format_version_is_refused_saying_what_to_do(
    model_dir, tmp_path, version, message
):
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    card = json.loads((other / "model.json").read_text())
    card["format_version"] = version
    (other / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelFormatError, match=message):
        Inspector.load(other)


def test_missing_model_files_are_named(model_dir, tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        Inspector.load(tmp_path / "absent")
    no_onnx = tmp_path / "no_onnx"
    shutil.copytree(model_dir, no_onnx)
    (no_onnx / "model.onnx").unlink()
    with pytest.raises(ModelNotFoundError, match="model.onnx is missing"):
        Inspector.load(no_onnx)
    no_card = tmp_path / "no_card"
    shutil.copytree(model_dir, no_card)
    (no_card / "model.json").unlink()
    with pytest.raises(ModelNotFoundError, match="model.json is missing"):
        ModelCard.load(no_card)


def test_model_file_not_matching_its_card_is_refused(model_dir, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(model_dir, changed)
    with (changed / "model.onnx").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelFormatError, match="sha256"):
        Inspector.load(changed)


def test_a_failure_while_training_leaves_the_old_model_and_no_temp_dirs(
    dataset, model_dir, tmp_path, monkeypatch
):
    out = tmp_path / "model"
    shutil.copytree(model_dir, out)
    before = (out / "model.onnx").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("mes_vision.store._write", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        train_model(dataset, out, SMALL)
    assert (out / "model.onnx").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_out_dir_that_is_not_a_model_is_never_replaced(dataset, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(VisionError, match="not a model directory"):
        train_model(dataset, out, SMALL)
    assert (out / "holiday.jpg").read_bytes() == b"precious"
