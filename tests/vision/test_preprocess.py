"""What the model sees does not depend on how the image was stored: file format, EXIF
orientation, the frame around the region of interest, or the frame's aspect ratio."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mes_vision import FeatureConfig, ImageError, Inspector, TrainConfig, synthetic, train_model
from mes_vision.preprocess import Framing, fit, open_image

GRAIN_PX = 512
FAST = TrainConfig(
    features=replace(
        FeatureConfig(), short_side=128, patches_per_level=4000, bank_sizes=(256, 256, 128)
    ),
    folds=3,
)


def _grainy(seed: int) -> Image.Image:
    """A 512 px brushed-metal part with visible sensor grain (the issue's camera)."""
    image = np.asarray(synthetic.good_image("brushed_metal", seed, GRAIN_PX), np.float64)
    grain = np.random.default_rng(seed).normal(0, 6, image.shape)
    return Image.fromarray(np.clip(image + grain, 0, 255).astype(np.uint8))


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.fixture(scope="module", params=["JPEG", "PNG"])
def grain_model(request, tmp_path_factory) -> tuple[str, Inspector]:
    root = tmp_path_factory.mktemp(f"grain-{request.param}")
    (root / "good").mkdir()
    suffix = ".jpg" if request.param == "JPEG" else ".png"
    for i in range(16):
        (root / "good" / f"g{i:02d}{suffix}").write_bytes(_encode(_grainy(i), request.param))
    # At the default 224 px the grain JPEG takes away still shows: without the recompressed
    # training copies, the PNG-trained model rejected every JPEG part.
    train_model(
        root, root / "model", replace(FAST, features=replace(FAST.features, short_side=224))
    )
    return request.param, Inspector.load(root / "model")


def test_the_file_format_never_changes_the_verdict(grain_model):
    trained_on, inspector = grain_model
    # Given 30 new good parts and 10 defective ones, each saved as JPEG 92 and as PNG
    parts = [_grainy(1000 + i) for i in range(30)] + [
        Image.fromarray(
            np.asarray(synthetic.defect_image("brushed_metal", kind, 2000 + i, 1.0, GRAIN_PX))
        )
        for i, kind in enumerate(synthetic.DEFECT_KINDS * 2)
    ]
    jpeg = inspector.score_batch([_encode(p, "JPEG") for p in parts])
    png = inspector.score_batch([_encode(p, "PNG") for p in parts])
    # Then the parts get the same verdict from both files, whichever format trained the model
    # (a part scoring within a few percent of the threshold may fall either side)
    agree = [a.verdict == b.verdict for a, b in zip(jpeg, png, strict=True)]
    assert np.mean(agree) >= 0.95, trained_on
    for a, same in zip(jpeg, agree, strict=True):
        assert same or abs(a.score - a.threshold) < 0.1 * a.threshold
    good_jpeg, good_png = jpeg[:30], png[:30]
    assert np.mean([v.verdict == "DEFECT" for v in good_png]) <= 0.05
    assert np.mean([v.verdict == "DEFECT" for v in good_jpeg]) <= 0.05
    # And a good part's two scores typically differ by far less than the margin to the
    # threshold (JPEG 92 does change the grain a little: the largest differences are bigger)
    difference = np.abs(np.array([v.score for v in good_jpeg]) - [v.score for v in good_png])
    assert np.median(difference) < 0.1 * inspector.threshold


def test_the_exif_orientation_is_applied(tmp_path):
    # Given a camera that stores frames sideways with an EXIF orientation tag (6: rotate 90)
    upright = synthetic.good_image("printed_label", 3, 96)
    sideways = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.png"
    sideways.save(path, exif=exif)
    framing = Framing((64, 64))
    # Then the model sees the upright part
    np.testing.assert_array_equal(
        np.asarray(open_image(path, framing)), np.asarray(open_image(upright, framing))
    )


def test_only_the_region_of_interest_is_seen_and_a_frame_without_it_is_an_error():
    frame = Image.new("RGB", (200, 120), (20, 20, 20))
    frame.paste(synthetic.good_image("cast", 1, 64), (100, 40))
    framing = Framing((64, 64), roi=(100, 40, 64, 64))
    inside = np.asarray(open_image(frame, framing))
    # A defect outside the region does not reach the model
    frame.paste((255, 0, 0), (0, 0, 90, 120))
    np.testing.assert_array_equal(np.asarray(open_image(frame, framing)), inside)
    with pytest.raises(ImageError, match=r"100x50 does not contain the region of interest"):
        open_image(Image.new("RGB", (100, 50)), framing)


def test_a_frame_of_another_aspect_is_cropped_never_squashed():
    # A 3:1 frame whose left and right thirds are red and blue, for a 2:1 model input
    frame = Image.new("RGB", (300, 100), (0, 255, 0))
    frame.paste((255, 0, 0), (0, 0, 100, 100))
    frame.paste((0, 0, 255), (200, 0, 300, 100))
    seen = np.asarray(fit(frame, (128, 64)), np.float64)
    assert seen.shape == (64, 128, 3)
    # Covered at 192x64 and the centre 128 kept: red 0-32, green 32-96, blue 96-128 (a squash
    # to 128 wide would give each colour a third, red reaching column 42)
    row = seen[32]
    assert (
        (row[2:30, 0] > 200).all() and (row[36:92, 1] > 200).all() and (row[100:126, 2] > 200).all()
    )
    # Same aspect: a plain resize, nothing cropped
    same = fit(Image.new("RGB", (256, 128), (9, 9, 9)), (128, 64))
    assert same.size == (128, 64)


def test_a_model_trains_on_a_region_of_interest_with_its_aspect(tmp_path):
    root = tmp_path / "ds"
    (root / "good").mkdir(parents=True)
    for i in range(12):
        frame = Image.new("RGB", (240, 160), (0, 0, 0))
        frame.paste(synthetic.good_image("printed_label", i, 128).crop((0, 0, 128, 64)), (40, 30))
        frame.save(root / "good" / f"g{i:02d}.png")
    config = replace(FAST, roi=(40, 30, 128, 64), features=replace(FAST.features, short_side=64))
    card = train_model(root, tmp_path / "model", config)
    assert card.framing.size == (128, 64) and card.framing.roi == (40, 30, 128, 64)
    inspector = Inspector.load(tmp_path / "model")
    verdict = inspector.score_image(root / "good" / "g00.png", with_map=True)
    # The map keeps the 2:1 aspect too (one cell per 4 pixels, less the border)
    assert verdict.anomaly_map.shape == (14, 30)


def test_burn_in_moves_the_threshold_to_the_lines_own_good_parts(tmp_path):
    from mes_vision.burn_in import burn_in

    root = tmp_path / "ds"
    synthetic.write_dataset(root, "cast", n_good=12, size=96)
    small = replace(FAST, features=replace(FAST.features, short_side=64))
    train_model(root, tmp_path / "model", small)
    before = Inspector.load(tmp_path / "model")
    # The line's light is 10% brighter than the training images': scores move
    production = [
        Image.fromarray(
            np.clip(
                np.asarray(synthetic.good_image("cast", 500 + i, 96), float) * 1.1, 0, 255
            ).astype(np.uint8)
        )
        for i in range(24)
    ]
    with pytest.raises(Exception, match="at least 20"):
        burn_in(tmp_path / "model", production[:5])
    card = burn_in(tmp_path / "model", production)
    after = Inspector.load(tmp_path / "model")
    assert card.validation["burn_in"]["images"] == 24
    assert card.validation["burn_in"]["previous_threshold"] == before.threshold
    assert after.threshold == card.threshold != before.threshold
    assert after.card.model_sha256 == before.card.model_sha256
    # The confirmed-good parts pass at the new threshold
    assert all(v.verdict == "GOOD" for v in after.score_batch(production))
    assert Path(tmp_path / "model" / "model.onnx").exists()
