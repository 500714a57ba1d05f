"""The pieces training fits: whitening, the per-position Gaussian, the coreset, input sizes,
the threshold and the synthetic anomalies."""

from __future__ import annotations

import numpy as np
import pytest

from mes_vision import anomalies, calibration
from mes_vision.features import (
    FeatureConfig,
    bank_features,
    coreset,
    fit_position,
    fit_whitening,
    input_shape,
)


def _features(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(6, 6))
    return np.einsum("ij,njyx->niyx", mixing, rng.normal(size=(30, 6, 8, 8))) + 5


def test_whitening_gives_unit_covariance_and_groups_stay_apart():
    x = _features()
    whole = fit_whitening(x, ridge=0.0)
    z = whole.apply(x).transpose(0, 2, 3, 1).reshape(-1, 6)
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(6), atol=1e-6)
    grouped = fit_whitening(x, groups=[2, 4])
    # Block-diagonal: no group's whitened features depend on another group's
    assert np.all(grouped.matrix[:2, 2:] == 0) and np.all(grouped.matrix[2:, :2] == 0)


def test_features_left_out_of_the_whitening_take_no_part_in_distances():
    x = _features()
    whitening = fit_whitening(x, ridge=0.0, keep=[0, 1, 5])
    z = whitening.apply(x)
    assert np.all(z[:, 2:5] == 0)
    kept = z[:, [0, 1, 5]].transpose(0, 2, 3, 1).reshape(-1, 3)
    np.testing.assert_allclose(np.cov(kept, rowvar=False), np.eye(3), atol=0.05)
    # The bank compares colour, log energies and the unexplained energy, not mean responses
    config = FeatureConfig(channels=4)
    assert bank_features(config) == [0, 1, 2, 3, 4, 5, 6, 11]


def test_position_model_has_one_map_per_group_averaging_its_features():
    z = np.random.default_rng(1).normal(size=(20, 6, 4, 4))
    model = fit_position(z, groups=[2, 4])
    np.testing.assert_allclose(
        model.map_weight, [[0.5, 0.5, 0, 0, 0, 0], [0, 0, 0.25] + [0.25] * 3]
    )
    # Shrinkage pulls each location's variance toward the feature's pooled variance
    raw = z.var(axis=0, ddof=1)
    pooled = raw.mean(axis=(1, 2), keepdims=True)
    shrunk = 1 / model.inv_var
    assert np.all(np.abs(shrunk - pooled) <= np.abs(raw - pooled) + 1e-12)
    assert np.all((shrunk - pooled) * (raw - pooled) >= 0)
    np.testing.assert_allclose(shrunk.mean(axis=(1, 2)), pooled[:, 0, 0])


def test_the_global_gaussian_is_one_for_every_location():
    z = np.random.default_rng(5).normal(2.0, 3.0, size=(20, 6, 4, 4))
    model = fit_position(z, groups=[2, 4], anywhere=True)
    assert model.mean.shape == model.inv_var.shape == (6, 1, 1)
    np.testing.assert_allclose(model.mean[:, 0, 0], z.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(1 / model.inv_var[:, 0, 0], z.var(axis=(0, 2, 3)), rtol=1e-2)


def test_a_skipped_group_gets_no_map_and_no_weight():
    z = np.random.default_rng(6).normal(size=(10, 6, 4, 4))
    model = fit_position(z, groups=[2, 3, 1], anywhere=True, skip=(1,))
    assert model.map_weight.shape == (2, 6)
    assert np.all(model.inv_var[2:5] == 0) and np.all(model.map_weight[:, 2:5] == 0)
    assert np.all(np.isfinite(model.inv_var))


def test_coreset_keeps_the_rare_pattern_and_thins_the_common_one():
    rng = np.random.default_rng(2)
    common = rng.normal(0, 0.01, size=(5000, 4))
    rare = np.full((3, 4), 10.0)
    bank = coreset(np.concatenate([common, rare]), 8, rng)
    assert bank.shape == (8, 4)
    assert (np.abs(bank - 10) < 1e-6).all(axis=1).sum() >= 1


def test_input_shape_keeps_the_aspect_ratio_and_never_enlarges():
    config = FeatureConfig()
    # A 4:3 landscape region at 224 on its shorter side
    assert input_shape(1024, 768, config) == (304, 224)
    # Portrait regions stay portrait
    width, height = input_shape(300, 390, config)
    assert width == 224 and abs(height / width - 390 / 300) < 0.05
    # A region smaller than 224 keeps its own resolution (rounded to whole coarse cells)
    assert input_shape(112, 112, config) == (112, 112)
    assert all(v % config.multiple == 0 for v in input_shape(333, 517, config))


def test_gumbel_threshold_expects_the_asked_false_reject_rate():
    rng = np.random.default_rng(3)
    scores = rng.gumbel(2.0, 0.3, size=4000)
    threshold = calibration.threshold_for(scores, 0.01)
    # The fitted tail matches the sample's: about 1% of good scores above
    assert 0.005 < np.mean(scores > threshold) < 0.02
    assert calibration.expected_false_rejects(scores, threshold) == pytest.approx(0.01, rel=1e-6)
    assert calibration.threshold_for(scores, 0.001) > threshold
    with pytest.raises(ValueError, match="false_reject_rate"):
        calibration.threshold_for(scores, 0.0)


@pytest.mark.parametrize("kind", anomalies.KINDS)
def test_each_synthetic_anomaly_changes_a_local_part_of_the_image(kind):
    rng = np.random.default_rng(4)
    image = rng.uniform(60, 200, size=(64, 80, 3))
    donor = rng.uniform(0, 255, size=(64, 80, 3))
    changed = np.abs(anomalies.make_anomaly(image, donor, kind, rng) - image).max(axis=2) > 1
    assert changed.shape == (64, 80)
    assert 0 < changed.mean() < 0.5
