"""The graph computes what training fits in numpy: standardised pyramid, the two distances."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from mes_vision import graph
from mes_vision.features import (
    FeatureConfig,
    fit_bank,
    fit_position,
    fit_whitening,
    pyramid,
    sample_patches,
    standardise,
)
from mes_vision.preprocess import to_tensor
from mes_vision.train import fit_extractor

SIZE = 48
CONFIG = FeatureConfig(short_side=SIZE, patches_per_level=2000, blur_radius=0, border=0)


def _run(model, x, outputs=None):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(outputs, {graph.INPUT: x})


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.uniform(0, 255, size=(6, SIZE, SIZE, 3)).astype(np.float32)


def test_graph_standardises_like_numpy(images):
    # The patches training samples come from numpy's pyramid; the graph must see the same.
    rng = np.random.default_rng(0)
    extractor = fit_extractor(images, CONFIG, rng)
    features = extractor.features(images)
    levels = pyramid(standardise(images.transpose(0, 3, 1, 2).astype(np.float64)), CONFIG.levels)
    for n, level in enumerate(levels):
        # The colour group is each cell's mean of the standardised pixels.
        cells = level.reshape(6, 3, level.shape[2] // 4, 4, level.shape[3] // 4, 4).mean((3, 5))
        np.testing.assert_allclose(features[n][:, :3], cells, atol=1e-4)
    assert sample_patches(levels[0], 5, 10, rng).shape == (10, 75)


@pytest.mark.parametrize("kind", ["position", "global", "bank"])
def test_graph_distances_equal_the_numpy_definitions(images, kind):
    rng = np.random.default_rng(0)
    extractor = fit_extractor(images, CONFIG, rng)
    features = extractor.features(images)
    scorers, expected = [], []
    for n, f in enumerate(features):
        groups = CONFIG.groups if kind != "bank" else None
        whitening = fit_whitening(f[:4], groups)
        z, z_test = whitening.apply(f[:4]), whitening.apply(f[4:])
        if kind != "bank":
            good = fit_position(z, CONFIG.groups, anywhere=kind == "global")
            d2 = np.einsum(
                "gd,ndyx->ngyx", good.map_weight, (z_test - good.mean) ** 2 * good.inv_var
            )
        else:
            good = fit_bank(z, 50, rng).astype(np.float64)
            rows = z_test.transpose(0, 2, 3, 1)
            d2 = ((rows[..., None, :] - good) ** 2).sum(-1).min(-1)[:, None] / z.shape[1]
        scorers.append(graph.LevelScorer(whitening, good))
        # Coarser levels are repeated up to the finest grid, then the peak taken
        up = np.repeat(np.repeat(d2, 2**n, axis=2), 2**n, axis=3)
        expected.append(up.max(axis=(2, 3)))
    (peaks,) = _run(extractor.model(scorers), images[4:], [graph.LEVEL_PEAKS])
    np.testing.assert_allclose(peaks, np.concatenate(expected, axis=1), rtol=2e-3, atol=1e-4)


def test_to_tensor_fills_one_float_batch_and_refuses_mixed_sizes():
    rng = np.random.default_rng(2)
    images = [
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)) for _ in range(3)
    ]
    batch = to_tensor(images)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, np.stack([np.asarray(i, np.float32) for i in images]))
    with pytest.raises(ValueError, match="size"):
        to_tensor([images[0], images[0].resize((SIZE, SIZE // 2))])
