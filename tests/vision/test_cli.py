"""``python -m mes_vision train|score`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image

from mes_vision import ModelCard, synthetic
from mes_vision.cli import main
from tests.conftest import PROJECT_ROOT
from tests.vision.conftest import IMAGE_PX, SURFACE


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_cli_trains_a_model_directory(dataset, tmp_path, capsys):
    out = str(tmp_path / "m")
    code = main(["train", str(dataset), "--out", out, "--short-side", "64", "--roi", "8,8,80,64"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    card = ModelCard.load(tmp_path / "m")
    assert summary["threshold"] == card.threshold
    assert summary["validation"]["scorer"] == card.validation["scorer"]
    # The region of interest keeps its 5:4 aspect at 64 px on its shorter side
    assert card.framing.roi == (8, 8, 80, 64) and card.framing.size == (80, 64)
    assert (tmp_path / "m" / "model.onnx").stat().st_size > 0


def test_cli_refuses_a_malformed_region_of_interest(dataset, tmp_path, capsys):
    for roi in ("1,2,3", "a,b,c,d", "0,0,0,10"):
        try:
            main(["train", str(dataset), "--out", str(tmp_path / "m"), "--roi", roi])
        except SystemExit as exc:
            assert exc.code == 2
        assert "--roi" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_cli_train_error_is_one_clear_line(tmp_path, capsys):
    code = main(["train", str(tmp_path), "--out", str(tmp_path / "m")])
    assert code == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: {tmp_path / 'good'} is missing: put images of good parts there"
    )


def test_cli_scores_json_lines_with_error_for_corrupt_image_and_heatmaps(
    model_dir, tmp_path, capsys
):
    good = tmp_path / "good.png"
    synthetic.good_image(SURFACE, 4242, IMAGE_PX).save(good)
    defect = tmp_path / "defect.jpg"
    synthetic.defect_image(SURFACE, "missing", 77, 1.0, IMAGE_PX).save(defect, quality=95)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not an image")
    heat = tmp_path / "heat"

    code = main(
        ["score", str(model_dir), str(good), str(corrupt), str(defect), "--heatmap-dir", str(heat)]
    )

    lines = _lines(capsys.readouterr().out)
    assert code == 1  # an image failed, the others were still scored
    assert [line["image"] for line in lines] == [str(good), str(corrupt), str(defect)]
    assert lines[1]["verdict"] == "ERROR" and "cannot decode" in lines[1]["reason"]
    assert lines[0]["verdict"] == "GOOD" and lines[2]["verdict"] == "DEFECT"
    assert lines[2]["score"] > lines[0]["score"]
    for line in (lines[0], lines[2]):
        with Image.open(line["heatmap"]) as png:
            assert png.format == "PNG" and png.size == (256, 256)
    assert sorted(p.name for p in heat.iterdir()) == ["defect.heatmap.png", "good.heatmap.png"]


def test_python_dash_m_scores_in_a_subprocess(model_dir, tmp_path):
    image = tmp_path / "part.png"
    synthetic.good_image(SURFACE, 31, IMAGE_PX).save(image)
    result = subprocess.run(
        [sys.executable, "-m", "mes_vision", "score", str(model_dir), str(image)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (line,) = _lines(result.stdout)
    assert set(line) == {"image", "score", "verdict"}
    assert line["verdict"] in {"GOOD", "DEFECT"} and isinstance(line["score"], float)
