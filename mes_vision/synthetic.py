"""Deterministic synthetic inspection images: textured and structured surfaces with defects.

Shared by the tests and the accuracy benchmark. Every image is a function of its arguments
and ``seed``; each good image is a new instance of its surface (new texture, small shifts,
lighting changes), as consecutive parts on a line are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SURFACES = ("brushed_metal", "cast", "machined", "printed_label", "woven")
DEFECT_KINDS = ("scratch", "crack", "stain", "missing", "foreign")
SEVERITIES = (0.25, 0.5, 0.75, 1.0)


def _blur(a: np.ndarray, sigma_y: float, sigma_x: float) -> np.ndarray:
    """Gaussian blur of a 2-D array by FFT (wraps around, which textures do not mind)."""
    h, w = a.shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    kernel = np.exp(-2 * np.pi**2 * ((sigma_y * fy) ** 2 + (sigma_x * fx) ** 2))
    return np.fft.irfft2(np.fft.rfft2(a) * kernel, s=(h, w))


def _unit(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / (a.std() + 1e-9)


def _mask(shape: tuple[int, int], draw_fn, blur: float = 0.7) -> np.ndarray:
    """A soft 0..1 mask drawn with Pillow at 4x and reduced, so thin lines are anti-aliased."""
    h, w = shape
    big = Image.new("L", (w * 4, h * 4), 0)
    draw_fn(ImageDraw.Draw(big), 4)
    m = np.asarray(big.resize((w, h), Image.Resampling.BOX), np.float64) / 255
    return np.clip(_blur(m, blur, blur), 0, 1) if blur else m


def _surface(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    light = 1 + rng.uniform(-0.04, 0.04) + rng.uniform(-0.05, 0.05) * (yy - 0.5)
    if kind == "brushed_metal":
        grain = _unit(_blur(rng.normal(size=(size, size)), 0.6, size / 8))
        v = 0.58 + 0.06 * grain + 0.02 * rng.normal(size=(size, size))
        img = v[..., None] * np.array([0.97, 1.0, 1.04])
    elif kind == "cast":
        n = sum(
            w * _unit(_blur(rng.normal(size=(size, size)), s, s))
            for w, s in ((0.5, 1.0), (0.35, 3.0), (0.25, 9.0))
        )
        img = (0.5 + 0.07 * n)[..., None] * np.array([1.0, 0.93, 0.82])
    elif kind == "machined":
        cy, cx = 0.5 + rng.uniform(-0.01, 0.01, 2)
        r = np.hypot(yy - cy, xx - cx) * size
        rings = np.sin(2 * np.pi * r / 7.0 + rng.uniform(0, 2 * np.pi))
        v = 0.55 + 0.05 * rings + 0.12 * (r / size) + 0.015 * rng.normal(size=(size, size))
        v = np.where(r < size * 0.12, 0.18 + 0.02 * rng.normal(size=(size, size)), v)
        img = v[..., None] * np.array([1.0, 1.0, 0.98])
    elif kind == "printed_label":
        img = _label(size, rng)
    elif kind == "woven":
        period = size / 24
        phase = rng.uniform(0, 2 * np.pi, 2)
        weave = np.sin(2 * np.pi * xx * size / period + phase[0]) * np.sin(
            2 * np.pi * yy * size / period + phase[1]
        )
        fibre = _unit(_blur(rng.normal(size=(size, size)), 1.0, 1.0))
        v = 0.5 + 0.1 * weave + 0.04 * fibre
        img = v[..., None] * np.array([0.75, 0.95, 0.7])
    else:
        raise ValueError(f"unknown surface {kind!r}; choose one of {SURFACES}")
    return img * light[..., None]


def _label(size: int, rng: np.random.Generator) -> np.ndarray:
    """A printed label: same layout on every part (fixed seed), placed with a small jitter."""
    layout = np.random.default_rng(1234)
    paper = 0.88 + 0.015 * _unit(_blur(rng.normal(size=(size, size)), 1.2, 1.2))
    img = paper[..., None] * np.array([1.0, 0.98, 0.93])
    dy, dx = rng.integers(-2, 3, 2)
    ink = rng.uniform(0.9, 1.0)
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    s = size / 256

    def box(x0, y0, x1, y1, colour):
        draw.rectangle([x0 * s + dx, y0 * s + dy, x1 * s + dx, y1 * s + dy], fill=colour)

    box(20, 20, 76, 76, (200, 30, 30))  # logo
    box(32, 32, 64, 64, (0, 0, 0))
    for row in range(6):  # lines of "text"
        x = 90
        while x < 236:
            width = layout.integers(4, 18)
            box(x, 24 + row * 10, min(x + width, 236), 29 + row * 10, (30, 30, 40))
            x += width + layout.integers(3, 7)
    x = 30
    while x < 226:  # barcode
        width = layout.integers(1, 5)
        box(x, 150, x + width - 1, 220, (20, 20, 20))
        x += width + layout.integers(1, 5)
    box(8, 8, 248, 10, (40, 60, 160))
    box(8, 240, 248, 242, (40, 60, 160))
    printed = np.asarray(canvas, np.float64) / 255
    covered = printed.max(axis=2, keepdims=True) > 0
    return np.where(covered, img * (1 - ink) + printed * ink * 0.9 + 0.03, img)


def add_defect(img: np.ndarray, kind: str, severity: float, rng: np.random.Generator) -> np.ndarray:
    shape = img.shape[:2]
    size = min(shape)
    s = float(np.clip(severity, 0.05, 1.0))
    cx, cy = rng.uniform(0.2, 0.8, 2) * shape[::-1]
    if kind == "scratch":
        angle = rng.uniform(0, np.pi)
        half = size * (0.12 + 0.18 * s)
        dx, dy = np.cos(angle) * half, np.sin(angle) * half
        width = 1.2 + 1.3 * s
        m = _mask(
            shape,
            lambda d, k: d.line(
                [(k * (cx - dx), k * (cy - dy)), (k * (cx + dx), k * (cy + dy))],
                fill=255,
                width=max(1, round(k * width)),
            ),
        )
        sign = rng.choice([-1.0, 1.0])
        return img + sign * (0.08 + 0.22 * s) * m[..., None]
    if kind == "crack":
        steps = int(10 + 20 * s)
        angle = rng.uniform(0, 2 * np.pi)
        points = [(cx, cy)]
        for _ in range(steps):
            angle += rng.normal(0, 0.5)
            x, y = points[-1]
            points.append((x + 3 * np.cos(angle), y + 3 * np.sin(angle)))
        width = 1.0 + 1.0 * s
        m = _mask(
            shape,
            lambda d, k: d.line(
                [(k * x, k * y) for x, y in points], fill=255, width=max(1, round(k * width))
            ),
        )
        return img * (1 - (0.3 + 0.45 * s) * m[..., None])
    if kind == "stain":
        radius = size * (0.04 + 0.06 * s)
        blob = _blob(shape, cx, cy, radius, rng)
        m = np.clip(_blur(blob, radius / 4, radius / 4), 0, 1)
        tint = np.array([0.85, 0.7, 0.45]) if rng.random() < 0.5 else np.array([0.55, 0.6, 0.7])
        strength = 0.2 + 0.45 * s
        return img * (1 - strength * m[..., None] * (1 - tint))
    if kind == "missing":
        radius = size * (0.025 + 0.045 * s)
        m = np.clip(_blur(_blob(shape, cx, cy, radius, rng), 0.8, 0.8), 0, 1)[..., None]
        # Bare material below: flat, darker than the surface, with a lit rim on one side.
        floor = img.mean(axis=(0, 1)) * (0.75 - 0.25 * s)
        rim = np.roll(m, (2, 2), axis=(0, 1)) - m
        return img * (1 - m) + floor * m + 0.12 * s * np.clip(rim, 0, 1)
    if kind == "foreign":
        radius = size * (0.012 + 0.025 * s)
        m = np.clip(_blur(_blob(shape, cx, cy, radius, rng), 0.7, 0.7), 0, 1)[..., None]
        colour = rng.choice([[0.1, 0.1, 0.1], [0.9, 0.9, 0.85], [0.2, 0.5, 0.9], [0.8, 0.6, 0.2]])
        texture = 1 + 0.1 * rng.normal(size=img.shape)
        alpha = 0.45 + 0.55 * s
        return img * (1 - alpha * m) + np.asarray(colour) * texture * alpha * m
    raise ValueError(f"unknown defect kind {kind!r}; choose one of {DEFECT_KINDS}")


def _blob(
    shape: tuple[int, int], cx: float, cy: float, radius: float, rng: np.random.Generator
) -> np.ndarray:
    """An irregular filled blob: a polygon with a noisy radius."""
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    radii = radius * np.exp(_blur(rng.normal(0, 0.6, (1, 24)), 0, 1.5)[0])
    pts = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a, r in zip(angles, radii, strict=True)]
    return _mask(shape, lambda d, k: d.polygon([(k * x, k * y) for x, y in pts], fill=255), blur=0)


def _to_image(img: np.ndarray, noise_rng: np.random.Generator) -> Image.Image:
    # Sensor noise last, after any defect, as the camera adds it.
    img = img + 0.01 * noise_rng.normal(size=img.shape)
    return Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8), "RGB")


def good_image(surface: str, seed: int, size: int = 256) -> Image.Image:
    rng = np.random.default_rng([seed, 0])
    return _to_image(_surface(surface, size, rng), rng)


def defect_image(
    surface: str, kind: str, seed: int, severity: float = 1.0, size: int = 256
) -> Image.Image:
    rng = np.random.default_rng([seed, 1])
    img = _surface(surface, size, rng)
    return _to_image(add_defect(img, kind, severity, rng), rng)


def write_dataset(
    root: str | Path,
    surface: str,
    n_good: int,
    n_defect: int = 0,
    seed: int = 0,
    size: int = 256,
    kinds: tuple[str, ...] = DEFECT_KINDS,
    severity: float = 0.75,
) -> Path:
    """Write ``root/good/*.png`` and ``root/defect/*.png`` (defects cycle through ``kinds``)."""
    root = Path(root)
    (root / "good").mkdir(parents=True, exist_ok=True)
    for i in range(n_good):
        good_image(surface, seed * 100_000 + i, size).save(root / "good" / f"good_{i:03d}.png")
    if n_defect:
        (root / "defect").mkdir(parents=True, exist_ok=True)
    for i in range(n_defect):
        kind = kinds[i % len(kinds)]
        image = defect_image(surface, kind, seed * 100_000 + 50_000 + i, severity, size)
        image.save(root / "defect" / f"{kind}_{i:03d}.png")
    return root
