"""What training learns from good images: patch-PCA filter banks and a Gaussian of "good".

Two successive subspace stages (PCANet / AnomalyHop style) build the features: stage 1 is a
PCA of raw RGB patches, stage 2 a PCA of patches of the rectified, pooled stage-1 responses.
The Gaussian has a mean per grid location, one shared covariance (whitening) and a
per-location variance per whitened feature, shrunk toward 1 because few images are available.
Each group of features (colour, mean response, PCA residual, energies) is whitened on its own
and gives its own distance map, scaled so that good images typically peak at 1: a faint defect
that shows in one group alone is not averaged away by the dozens of features it leaves alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Squared distances are blurred with binomial taps of this radius before the maximum: long
# thin defects (scratches, cracks) need evidence added up over neighbouring cells.
BLUR_RADIUS = 2


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
    # One distance map per feature group (their maximum) instead of one over all features.
    score_groups: bool = True

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
    # Per map, the weight of each whitened squared distance: 1 / (group size x typical peak).
    map_weight: np.ndarray  # [M, D]


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


def blur_taps() -> np.ndarray:
    """The separable binomial blur of the distance maps, ``[2 * BLUR_RADIUS + 1]``."""
    k = BLUR_RADIUS
    taps = np.array([math.comb(2 * k, i) for i in range(2 * k + 1)], np.float64)
    return taps / taps.sum()


def blur_maps(maps: np.ndarray) -> np.ndarray:
    """``maps[..., H, W]`` blurred as the graph does, with edge padding."""
    taps, k = blur_taps(), BLUR_RADIUS
    pad = [(0, 0)] * (maps.ndim - 2) + [(k, k), (k, k)]
    padded = np.pad(maps, pad, mode="edge")
    h, w = maps.shape[-2:]
    rows = sum(t * padded[..., i : i + h, :] for i, t in enumerate(taps))
    return sum(t * rows[..., :, i : i + w] for i, t in enumerate(taps))


def fit_good_model(
    features: np.ndarray,
    shrinkage: float = 4.0,
    ridge: float = 1e-3,
    groups: Sequence[int] | None = None,
) -> GoodModel:
    """Fit the Gaussian of good features ``features[N, D, G, G]``.

    ``groups``: the sizes of consecutive feature groups, each whitened on its own and scored
    as its own map; without it, one map averages all ``D`` features.
    """
    n, d, _, _ = features.shape
    sizes = list(groups) if groups else [d]
    if sum(sizes) != d:
        raise ValueError(f"feature groups {sizes} do not add up to {d} features")
    feats = features.astype(np.float64)
    mean = feats.mean(axis=0)
    whiten = np.zeros((d, d))
    map_weight = np.zeros((len(sizes), d))
    for g, start in enumerate(np.cumsum([0, *sizes[:-1]])):
        part = slice(start, start + sizes[g])
        residual = (feats[:, part] - mean[part]).transpose(0, 2, 3, 1).reshape(-1, sizes[g])
        # Per-location means cost one degree of freedom per location.
        cov = residual.T @ residual / max(len(residual) - mean[0].size, 1)
        cov += ridge * np.trace(cov) / sizes[g] * np.eye(sizes[g])
        whiten[part, part] = np.linalg.inv(np.linalg.cholesky(cov))
        map_weight[g, part] = 1 / sizes[g]
    z = np.tensordot(whiten, feats - mean, axes=([1], [1])).transpose(1, 0, 2, 3)
    var = (z**2).sum(axis=0) / max(n - 1, 1)
    # Shrink each location's variance toward the shared one (1 after whitening).
    var = ((n - 1) * var + shrinkage) / (n - 1 + shrinkage)
    inv_var = 1 / var
    if len(sizes) > 1:
        # Each map divided by its typical peak on the training images, so the maps compete
        # on equal terms: a group of one feature has a heavier tail than a group of sixteen.
        maps = blur_maps(np.einsum("md,ndyx->nmyx", map_weight, z**2 * inv_var))
        map_weight /= maps.max(axis=(2, 3)).mean(axis=0)[:, None]
    return GoodModel(
        mean.astype(np.float32),
        whiten.astype(np.float32),
        inv_var.astype(np.float32),
        map_weight.astype(np.float32),
    )
