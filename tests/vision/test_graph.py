"""Speed-only rewrites of the graph and the batching give the same numbers as the plain forms."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from mes_vision import graph
from mes_vision.features import FeatureConfig, FilterBank
from mes_vision.preprocess import to_tensor

SIZE = 32


def _bank(rng: np.random.Generator, out: int, cin: int, k: int) -> FilterBank:
    return FilterBank(
        weight=rng.normal(size=(out, cin, k, k)),
        bias=rng.normal(size=out),
        mean=rng.uniform(0, 1, size=(1, cin, k, k)),
    )


def _features(config: FeatureConfig, x: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    stage1 = _bank(rng, config.channels1, 3, config.kernel1)
    stage2 = _bank(rng, config.channels2, config.channels1, config.kernel2)
    model = graph.build_model(config, stage1, stage2)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {graph.INPUT: x})[0]


def test_padding_stage_1_to_the_channel_block_leaves_the_features_unchanged(monkeypatch):
    config = FeatureConfig(image_size=SIZE)
    x = np.random.default_rng(1).uniform(0, 255, size=(2, SIZE, SIZE, 3)).astype(np.float32)
    padded = _features(config, x)
    monkeypatch.setattr(graph, "CHANNEL_BLOCK", 1)
    plain = _features(config, x)
    assert padded.shape == plain.shape == (2, config.dims, config.grid, config.grid)
    np.testing.assert_allclose(padded, plain, rtol=1e-5, atol=1e-5)


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
