"""Synthetic anomalies made from held-out good images, to measure how well a scorer separates.

A station's expert brings a handful of defect images at best, so training also asks how well
each scorer finds defects it has never seen, drawn onto good images it did not train on:
DRAEM-style foreign texture under a smooth random mask, CutPaste-style patches of the same
image moved elsewhere, scratches and blobs. Faint and obvious ones alike.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

KINDS = ("texture", "cutpaste", "scratch", "blob")


def _smooth_noise(shape: tuple[int, int], scale: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with features about ``scale`` pixels across (Perlin-like), unit deviation."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    spectrum = np.fft.rfft2(rng.normal(size=shape)) * np.exp(
        -2 * np.pi**2 * scale**2 * (fy**2 + fx**2)
    )
    noise = np.fft.irfft2(spectrum, s=shape)
    return (noise - noise.mean()) / (noise.std() + 1e-9)


def _region(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A soft mask of one or a few smooth random blobs covering 1-6% of the image."""
    h, w = shape
    noise = _smooth_noise(shape, rng.uniform(0.03, 0.08) * min(h, w), rng)
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.2, 0.8, 2) * (h, w)
    # Confine the blob near one centre so the anomaly is local, as defects are.
    window = np.exp(-(((yy - cy) / (0.15 * h)) ** 2 + ((xx - cx) / (0.15 * w)) ** 2))
    field = noise * window
    cut = np.quantile(field, 1 - rng.uniform(0.01, 0.06))
    return np.clip((field - cut) / (0.3 * field.std() + 1e-9), 0, 1)


def _line_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    canvas = Image.new("L", (w * 4, h * 4), 0)
    length = rng.uniform(0.15, 0.4) * min(h, w)
    angle = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0.2, 0.8, 2) * (w, h)
    dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    ImageDraw.Draw(canvas).line(
        [(4 * (cx - dx), 4 * (cy - dy)), (4 * (cx + dx), 4 * (cy + dy))],
        fill=255,
        width=max(1, round(4 * rng.uniform(0.8, 2.5))),
    )
    return np.asarray(canvas.resize((w, h), Image.Resampling.BOX), np.float64) / 255


def make_anomaly(
    image: np.ndarray, donor: np.ndarray, kind: str, rng: np.random.Generator
) -> np.ndarray:
    """``image[H, W, 3]`` (pixel values 0..255) with one anomaly of ``kind``; ``donor`` is
    another good image of the same station, the source of foreign texture."""
    h, w, _ = image.shape
    out = image.astype(np.float64)
    strength = rng.uniform(0.3, 1.0)
    if kind == "texture":
        mask = _region((h, w), rng)[..., None]
        # Foreign texture: the donor turned and recoloured, so it is not a shifted copy of good.
        foreign = np.rot90(donor, rng.integers(1, 4))
        foreign = np.asarray(
            Image.fromarray(np.clip(foreign, 0, 255).astype(np.uint8)).resize((w, h)),
            np.float64,
        )
        foreign = foreign[..., rng.permutation(3)] * rng.uniform(0.6, 1.4)
        return out * (1 - strength * mask) + foreign * strength * mask
    if kind == "cutpaste":
        ph, pw = (rng.uniform(0.08, 0.2, 2) * (h, w)).astype(int) + 2
        sy, sx = rng.integers(0, h - ph), rng.integers(0, w - pw)
        ty, tx = rng.integers(0, h - ph), rng.integers(0, w - pw)
        patch = out[sy : sy + ph, sx : sx + pw].copy()
        if rng.random() < 0.5:
            patch = patch[::-1]
        out[ty : ty + ph, tx : tx + pw] = (
            out[ty : ty + ph, tx : tx + pw] * (1 - strength) + patch * strength
        )
        return out
    if kind == "scratch":
        mask = _line_mask((h, w), rng)[..., None]
        level = 255.0 if rng.random() < 0.5 else 0.0
        return out * (1 - strength * mask) + level * strength * mask
    if kind == "blob":
        mask = _region((h, w), rng)[..., None]
        tint = rng.uniform(0.3, 1.7, 3)
        return out * (1 - strength * mask) + out * tint * strength * mask
    raise ValueError(f"unknown anomaly kind {kind!r}; choose one of {KINDS}")


def anomalies(
    images: np.ndarray, donors: np.ndarray, per_image: int, rng: np.random.Generator
) -> np.ndarray:
    """``per_image`` anomalies of each of ``images[N, H, W, 3]``, cycling through the kinds."""
    out = []
    for i, image in enumerate(images):
        for j in range(per_image):
            kind = KINDS[(i * per_image + j) % len(KINDS)]
            donor = donors[rng.integers(len(donors))]
            out.append(make_anomaly(image, donor, kind, rng))
    return np.clip(np.array(out), 0, 255).astype(np.float32)
