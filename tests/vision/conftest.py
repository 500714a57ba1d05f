"""Small generated datasets and one model trained once per session: training is the slow step."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mes_vision import FeatureConfig, TrainConfig, synthetic, train_model

SURFACE = "cast"
IMAGE_PX = 96
# A smaller input and fewer PCA patches than the defaults keep the suite fast.
SMALL = TrainConfig(
    features=replace(
        FeatureConfig(), short_side=64, patches_per_level=4000, bank_sizes=(128, 128, 64)
    ),
    folds=3,
)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    return synthetic.write_dataset(root, SURFACE, n_good=16, n_defect=2, seed=1, size=IMAGE_PX)


@pytest.fixture(scope="session")
def model_dir(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "model"
    train_model(dataset, out, SMALL)
    return out


def write_good(folder: Path, count: int, seed: int = 7, size: int = IMAGE_PX) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"g{i:02d}.png"
        synthetic.good_image(SURFACE, seed * 1000 + i, size).save(path)
        paths.append(path)
    return paths
