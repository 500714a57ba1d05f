"""What training learns from good images: filter banks, whitening, and two models of "good".

Each image is standardised (its mean removed, divided by its standard deviation) and
seen at three scales, a pyramid of 2x2 averages. At each level a PCA filter bank learned from
that level's patches gives, per cell of ``cell`` x ``cell`` pixels, the log energy and the mean
of every filter response and the log energy the filters leave unexplained. These features are
whitened with the covariance of good ones; then one of two scorers measures how far a cell is
from "good":

position: a Gaussian per cell (mean and variance per grid location), for fixtured parts whose
  every detail sits in the same place;
global: one Gaussian for every cell, for a stationary texture where any cell may look like any
  other but all share one distribution;
bank: the distance to the nearest of a memory bank of good cells from anywhere in the image
  (PatchCore's idea), thinned by a greedy k-center coreset, for stationary textures with no
  fixed layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

POSITION = "position"
GLOBAL = "global"
BANK = "bank"
SCORERS = (POSITION, GLOBAL, BANK)


@dataclass(frozen=True)
class FeatureConfig:
    """Architecture of the feature extractor and scorers; recorded in the model card."""

    # The shorter side of the region of interest is brought to this many pixels (never up).
    short_side: int = 224
    levels: int = 3
    kernel: int = 5
    channels: int = 16
    # Each level's map has one cell per ``cell`` x ``cell`` pixels of that level.
    cell: int = 4
    patches_per_level: int = 20_000
    # Memory bank rows per level, finest first: the finest level has the most cells to score.
    bank_sizes: tuple[int, ...] = (768, 768, 512)
    # Level-0 cells dropped at each edge of the map: a fixture's jitter moves content there.
    border: int = 1
    blur_radius: int = 1

    @property
    def dims(self) -> int:
        return sum(self.groups)

    @property
    def groups(self) -> tuple[int, ...]:
        """Sizes of the feature groups in graph order: colour, log energies, mean responses,
        log unexplained energy."""
        return (3, self.channels, self.channels, 1)

    @property
    def multiple(self) -> int:
        """Input sides are multiples of this: whole cells at the coarsest level."""
        return self.cell * 2 ** (self.levels - 1)


@dataclass(frozen=True)
class FilterBank:
    """A convolution ``weight[out, in, k, k]`` and ``bias[out]`` that centre and project patches.

    ``mean[1, in, k, k]`` is the mean patch, for the energy the components leave unexplained.
    """

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray


@dataclass(frozen=True)
class Whitening:
    """``z = matrix @ (f - mean)``: unit covariance for good features of one level."""

    mean: np.ndarray  # [D]
    matrix: np.ndarray  # [D, D]

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Whitened ``features[N, D, h, w]``."""
        centred = features - self.mean[None, :, None, None]
        return np.einsum("ij,njyx->niyx", self.matrix, centred)


@dataclass(frozen=True)
class PositionModel:
    """Per-location mean and inverse variance of whitened good features, ``[D, h, w]``, and
    ``map_weight[G, D]``: each group's map is the mean over its own features, so a faint defect
    that shows in one group is not averaged away by the many features it leaves alone."""

    mean: np.ndarray
    inv_var: np.ndarray
    map_weight: np.ndarray


def standardise(x: np.ndarray) -> np.ndarray:
    """``x[N, C, H, W]`` less each image's mean, divided by its deviation: a change of the
    light's brightness or the camera's gain cancels."""
    centred = x - x.mean(axis=(1, 2, 3), keepdims=True)
    return centred / np.sqrt((centred**2).mean(axis=(1, 2, 3), keepdims=True) + STD_EPS)


# Added to each image's variance (pixel values 0..255): a flat frame standardises to zeros.
STD_EPS = 1.0


def pyramid(x: np.ndarray, levels: int) -> list[np.ndarray]:
    """``x`` and its successive 2x2 averages."""
    out = [x]
    for _ in range(levels - 1):
        n, c, h, w = out[-1].shape
        out.append(out[-1].reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5)))
    return out


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


def fit_whitening(
    features: np.ndarray,
    groups: Sequence[int] | None = None,
    ridge: float = 1e-2,
    keep: Sequence[int] | None = None,
) -> Whitening:
    """Whitening of ``features[N, D, h, w]`` over every image and cell; with ``groups`` (sizes
    of consecutive features), each group on its own (block-diagonal). Features not in
    ``keep`` (indices) are whitened to zero: they take no part in the distances."""
    d = features.shape[1]
    flat = features.transpose(0, 2, 3, 1).reshape(-1, d).astype(np.float64)
    mean = flat.mean(axis=0)
    matrix = np.zeros((d, d))
    kept = np.asarray(keep if keep is not None else range(d))
    for start, size in zip(np.cumsum([0, *(groups or [d])[:-1]]), groups or [d], strict=True):
        part = kept[(kept >= start) & (kept < start + size)]
        if not len(part):
            continue
        cov = np.atleast_2d(np.cov(flat[:, part], rowvar=False))
        cov += ridge * np.trace(cov) / len(part) * np.eye(len(part))
        matrix[np.ix_(part, part)] = np.linalg.inv(np.linalg.cholesky(cov))
    return Whitening(mean, matrix)


def bank_features(config: FeatureConfig) -> list[int]:
    """The features the memory bank compares: colour, log energies and the unexplained energy.
    The mean responses are left out: on a texture they follow where a pattern's phase falls
    in the cell, so the nearest good cell would be sought by phase instead of by texture
    (random crops of a real aerial photograph: AUROC 0.72 without them, 0.52 with)."""
    colour, energies, means, _ = config.groups
    return [*range(colour + energies), colour + energies + means]


def fit_position(
    z: np.ndarray,
    groups: Sequence[int],
    shrinkage: float = 4.0,
    anywhere: bool = False,
    skip: Sequence[int] = (),
) -> PositionModel:
    """Per-location Gaussian of whitened features ``z[N, D, h, w]``.

    Each location's variance is shrunk toward the feature's variance pooled over locations: a
    few dozen images cannot estimate a variance per cell and feature on their own. The pooled
    target (not 1) keeps the scale of the distances the same whatever the number of images,
    so held-out scores of models fitted on fewer images calibrate the final model honestly.
    Groups whose indices are in ``skip`` get no map and no weight.
    """
    n = len(z)
    if anywhere:
        # One Gaussian for every location (``[D, 1, 1]``): a texture has no fixed layout.
        mean = z.mean(axis=(0, 2, 3))[:, None, None]
        var = ((z - mean) ** 2).mean(axis=(0, 2, 3))[:, None, None]
        n = len(z) * z.shape[2] * z.shape[3]
        shrinkage = 0.0
    else:
        mean = z.mean(axis=0)
        var = ((z - mean) ** 2).sum(axis=0) / max(n - 1, 1)
    pooled = var.mean(axis=(1, 2), keepdims=True)
    var = ((n - 1) * var + shrinkage * pooled) / (n - 1 + shrinkage)
    inv_var = 1 / var
    rows = []
    for g, (start, size) in enumerate(zip(np.cumsum([0, *groups[:-1]]), groups, strict=True)):
        if g in skip:
            inv_var[start : start + size] = 0
            continue
        rows.append(np.zeros(z.shape[1]))
        rows[-1][start : start + size] = 1 / size
    return PositionModel(mean, inv_var, np.array(rows))


# The global Gaussian leaves out the mean filter responses (group 2), as the bank does.
GLOBAL_SKIP = (2,)


def coreset(
    points: np.ndarray, size: int, rng: np.random.Generator, candidates: int = 30_000
) -> np.ndarray:
    """``size`` rows of ``points[P, D]`` chosen by greedy k-center: each pick is the point
    farthest from those already picked, so rare good patterns are kept and common ones thinned.

    Distances are measured in a random projection to at most 24 dimensions (as PatchCore
    does) over at most ``candidates`` random rows, which keeps training to seconds.
    """
    if len(points) <= size:
        return points.astype(np.float32)
    if len(points) > candidates:
        points = points[rng.choice(len(points), candidates, replace=False)]
    dims = points.shape[1]
    projected = points
    if dims > 24:
        projected = points @ (rng.normal(size=(dims, 24)) / math.sqrt(24))
    chosen = np.empty(size, np.int64)
    chosen[0] = rng.integers(len(points))
    nearest = ((projected - projected[chosen[0]]) ** 2).sum(axis=1)
    for i in range(1, size):
        chosen[i] = int(nearest.argmax())
        nearest = np.minimum(nearest, ((projected - projected[chosen[i]]) ** 2).sum(axis=1))
    return points[chosen].astype(np.float32)


def fit_bank(z: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """The memory bank ``[size, D]`` of whitened good cells ``z[N, D, h, w]``."""
    d = z.shape[1]
    return coreset(z.transpose(0, 2, 3, 1).reshape(-1, d), size, rng)


def blur_taps(radius: int) -> np.ndarray:
    """The separable binomial blur of the distance maps, ``[2 * radius + 1]``."""
    taps = np.array([math.comb(2 * radius, i) for i in range(2 * radius + 1)], np.float64)
    return taps / taps.sum()


def input_shape(width: int, height: int, config: FeatureConfig) -> tuple[int, int]:
    """The model input ``(width, height)`` for a region of interest of ``width`` x ``height``:
    the shorter side at ``config.short_side`` (or the region's own, never enlarged), the
    aspect ratio kept, both sides rounded to whole coarsest cells."""
    scale = min(1.0, config.short_side / min(width, height))
    m = config.multiple

    def side(v: int) -> int:
        return max(m * 4, int(round(v * scale / m)) * m)

    return side(width), side(height)
