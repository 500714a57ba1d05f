"""What training learns from good images: patch-PCA filter banks and a Gaussian of "good".

Two successive subspace stages (PCANet / AnomalyHop style) build the features: stage 1 is a
PCA of raw RGB patches, stage 2 a PCA of patches of the rectified, pooled stage-1 responses.
The Gaussian has a mean per grid location, one shared covariance (whitening) and a
per-location variance per whitened feature, shrunk toward 1 because few images are available.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureConfig:
    """Architecture of the feature extractor; recorded in the model card."""

    image_size: int = 128
    kernel1: int = 5
    channels1: int = 12
    kernel2: int = 3
    channels2: int = 16
    # The anomaly map has one cell per ``stride`` x ``stride`` input pixels.
    stride: int = 4
    patches_per_stage: int = 20_000

    @property
    def grid(self) -> int:
        return self.image_size // self.stride

    @property
    def dims(self) -> int:
        return 4 + 2 * self.channels1 + self.channels2


@dataclass(frozen=True)
class FilterBank:
    """A convolution ``weight[out, in, k, k]`` and ``bias[out]`` that centre and project patches.

    ``mean[1, in, k, k]`` is the mean patch, for the energy the components leave unexplained.
    """

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray


@dataclass(frozen=True)
class GoodModel:
    """Per-location mean, whitening matrix and per-location inverse variances of good features."""

    mean: np.ndarray  # [D, G, G]
    whiten: np.ndarray  # [D, D]
    inv_var: np.ndarray  # [D, G, G]


def sample_patches(x: np.ndarray, kernel: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random ``kernel`` x ``kernel`` patches of ``x[N, C, H, W]``, flattened C-major."""
    n, c, h, w = x.shape
    pad = kernel // 2
    # Zero padding, as the Conv in the graph does, so border patches are sampled as scored.
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    idx_n = rng.integers(0, n, count)
    idx_y = rng.integers(0, h, count)
    idx_x = rng.integers(0, w, count)
    offsets = np.arange(kernel)
    rows = idx_y[:, None, None] + offsets[None, :, None]
    cols = idx_x[:, None, None] + offsets[None, None, :]
    patches = padded[
        idx_n[:, None, None, None], np.arange(c)[None, :, None, None], rows[:, None], cols[:, None]
    ]
    return patches.reshape(count, c * kernel * kernel).astype(np.float64)


def fit_filter_bank(patches: np.ndarray, channels: int, in_channels: int) -> FilterBank:
    """The leading principal components of ``patches`` as a centred convolution."""
    mean = patches.mean(axis=0)
    cov = patches.T @ patches / len(patches) - np.outer(mean, mean)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:channels]
    components = vectors[:, order].T
    # eigh's signs are arbitrary; fixing them makes training reproducible across platforms.
    signs = np.sign(components[np.arange(channels), np.abs(components).argmax(axis=1)])
    components *= signs[:, None]
    kernel = int(round((patches.shape[1] / in_channels) ** 0.5))
    weight = components.reshape(channels, in_channels, kernel, kernel)
    return FilterBank(
        weight.astype(np.float32),
        (-(components @ mean)).astype(np.float32),
        mean.reshape(1, in_channels, kernel, kernel).astype(np.float32),
    )


def fit_good_model(features: np.ndarray, shrinkage: float = 4.0, ridge: float = 1e-3) -> GoodModel:
    """Fit the Gaussian of good features ``features[N, D, G, G]``."""
    n, d, _, _ = features.shape
    feats = features.astype(np.float64)
    mean = feats.mean(axis=0)
    residual = (feats - mean).transpose(0, 2, 3, 1).reshape(-1, d)
    # Per-location means cost one degree of freedom per location.
    cov = residual.T @ residual / max(len(residual) - mean[0].size, 1)
    cov += ridge * np.trace(cov) / d * np.eye(d)
    whiten = np.linalg.inv(np.linalg.cholesky(cov))
    z = np.tensordot(whiten, feats - mean, axes=([1], [1])).transpose(1, 0, 2, 3)
    var = (z**2).sum(axis=0) / max(n - 1, 1)
    # Shrink each location's variance toward the shared one (1 after whitening).
    var = ((n - 1) * var + shrinkage) / (n - 1 + shrinkage)
    return GoodModel(
        mean.astype(np.float32), whiten.astype(np.float32), (1 / var).astype(np.float32)
    )
