"""The Gaussian of good features: one distance map per feature group, on equal terms."""

from __future__ import annotations

import numpy as np
import pytest

from mes_vision.features import blur_maps, fit_good_model


def _features(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Groups of very different scales and sizes: 1, 3 and 8 features on an 8 x 8 grid
    scale = np.array([0.01] + [1.0] * 3 + [50.0] * 8)[None, :, None, None]
    return rng.normal(size=(30, 12, 8, 8)) * scale


def _maps(model, x: np.ndarray) -> np.ndarray:
    z = np.tensordot(model.whiten, x - model.mean, axes=([1], [1])).transpose(1, 0, 2, 3)
    return blur_maps(np.einsum("md,ndyx->nmyx", model.map_weight, z**2 * model.inv_var))


def test_each_group_is_whitened_alone_and_scaled_to_peak_near_one_on_good():
    x = _features()
    model = fit_good_model(x, groups=[1, 3, 8])
    assert model.map_weight.shape == (3, 12)
    # Block-diagonal whitening: no group sees another's features
    assert np.all(model.whiten[:1, 1:] == 0) and np.all(model.whiten[4:, :4] == 0)
    peaks = _maps(model, x).max(axis=(2, 3)).mean(axis=0)
    np.testing.assert_allclose(peaks, 1.0, rtol=1e-4)


def test_one_group_is_the_mean_over_all_features():
    model = fit_good_model(_features())
    np.testing.assert_allclose(model.map_weight, np.full((1, 12), 1 / 12), rtol=1e-6)


def test_a_shift_in_a_single_feature_group_shows_in_its_map():
    x = _features()
    model = fit_good_model(x, groups=[1, 3, 8])
    defect = _features(seed=1)[:1].copy()
    defect[0, 0, 3:5, 3:5] += 0.1  # ten standard deviations of the one-feature group
    maps = _maps(model, defect)[0]
    assert maps[0].max() > 3 * max(maps[1].max(), maps[2].max())


def test_groups_must_cover_the_features():
    with pytest.raises(ValueError, match="do not add up to 12"):
        fit_good_model(_features(), groups=[3, 3])
