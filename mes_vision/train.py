"""Training: fit both scorers, keep the one that separates best held out, calibrate, write.

Good images are split into folds. Each fold's model (filter banks, whitening and scorer, fitted
on the other folds) scores the held-out good images, synthetic anomalies drawn onto them and
the expert's defect images. Those honest scores choose the scorer, normalise each pyramid
level by its typical peak on good, and set the threshold; the final model is then fitted on
every good image.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

from mes_vision import anomalies, calibration, graph
from mes_vision.card import FORMAT_VERSION, ModelCard
from mes_vision.dataset import MIN_GOOD_IMAGES, load_dataset
from mes_vision.errors import VisionError
from mes_vision.features import (
    BANK,
    GLOBAL,
    GLOBAL_SKIP,
    POSITION,
    SCORERS,
    FeatureConfig,
    FilterBank,
    bank_features,
    fit_bank,
    fit_filter_bank,
    fit_position,
    fit_whitening,
    input_shape,
    pyramid,
    sample_patches,
    standardise,
)
from mes_vision.metrics import auroc
from mes_vision.preprocess import Framing, fit, to_tensor
from mes_vision.store import write_model_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    folds: int = 4
    shrinkage: float = 2.0
    # Synthetic anomalies drawn onto each held-out good image.
    anomalies_per_image: int = 2
    # The threshold is where the fitted tail of good scores expects this share of false rejects.
    false_reject_rate: float = 0.01
    # (left, top, width, height) in the oriented camera frame; None: the whole frame.
    roi: tuple[int, int, int, int] | None = None
    # Force one scorer instead of choosing by cross-validation.
    scorer: str | None = None
    seed: int = 0
    min_good: int = MIN_GOOD_IMAGES


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _run(model: onnx.ModelProto, x: np.ndarray, outputs=None, batch: int = 8) -> list[np.ndarray]:
    session = _session(model)
    parts = [session.run(outputs, {graph.INPUT: x[i : i + batch]}) for i in range(0, len(x), batch)]
    return [np.concatenate(p) for p in zip(*parts, strict=True)]


def fit_filter_banks(
    x: np.ndarray, fc: FeatureConfig, rng: np.random.Generator
) -> list[FilterBank]:
    """One PCA filter bank per pyramid level of the standardised good images ``x[N, H, W, 3]``."""
    levels = pyramid(standardise(x.transpose(0, 3, 1, 2).astype(np.float64)), fc.levels)
    return [
        fit_filter_bank(sample_patches(level, fc.kernel, fc.patches_per_level, rng), fc.channels, 3)
        for level in levels
    ]


@dataclass(frozen=True)
class Extractor:
    """Filter banks and the input size: what the features of one model depend on."""

    config: FeatureConfig
    size: tuple[int, int]
    banks: list[FilterBank]

    def features(self, x: np.ndarray) -> list[np.ndarray]:
        return _run(graph.build_model(self.config, self.size, self.banks), x)

    def scorers(
        self, features: list[np.ndarray], kind: str, config: TrainConfig, rng
    ) -> list[graph.LevelScorer]:
        scorers = []
        groups = self.config.groups
        for n, f in enumerate(features):
            gaussian = kind in (POSITION, GLOBAL)
            whitening = (
                fit_whitening(f, groups)
                if gaussian
                else fit_whitening(f, keep=bank_features(self.config))
            )
            z = whitening.apply(f)
            if gaussian:
                anywhere = kind == GLOBAL
                skip = GLOBAL_SKIP if anywhere else ()
                good = fit_position(z, groups, config.shrinkage, anywhere=anywhere, skip=skip)
            else:
                good = fit_bank(z, self.config.bank_sizes[n], rng)
            scorers.append(graph.LevelScorer(whitening, good))
        return scorers

    def model(self, scorers, norms=None) -> onnx.ModelProto:
        return graph.build_model(self.config, self.size, self.banks, scorers, norms)


def fit_extractor(x: np.ndarray, config: FeatureConfig, rng) -> Extractor:
    size = (x.shape[2], x.shape[1])
    return Extractor(config, size, fit_filter_banks(x, config, rng))


@dataclass
class HeldOut:
    """Each level's peak for held-out good images, synthetic anomalies and defect images."""

    good: np.ndarray
    synthetic: np.ndarray
    defect: np.ndarray

    def norms(self) -> np.ndarray:
        return np.median(self.good, axis=0)

    def scores(self, peaks: np.ndarray) -> np.ndarray:
        """Image scores as the graph computes them with these norms: sqrt of the max ratio."""
        return np.sqrt((peaks / self.norms()).max(axis=1))

    def separation(self) -> dict[str, float | None]:
        good = self.scores(self.good)
        result: dict[str, float | None] = {
            "synthetic_auroc": auroc(good, self.scores(self.synthetic)),
            "defect_auroc": auroc(good, self.scores(self.defect)) if len(self.defect) else None,
        }
        known = [v for v in result.values() if v is not None]
        result["separation"] = float(np.mean(known))
        return result


def cross_validate(
    good: np.ndarray,
    defect: np.ndarray,
    config: TrainConfig,
    kinds: tuple[str, ...],
    recompressed: np.ndarray | None = None,
) -> dict[str, HeldOut]:
    """Held-out peaks of each scorer ``kind``; defect peaks are averaged over the folds.
    ``recompressed``: a JPEG copy of each good image, fitted beside it (never held out)."""
    n = len(good)
    folds = max(2, min(config.folds, n // 2))
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(n)
    per_image = config.anomalies_per_image
    # Each scorer's map count shows in its first peaks; the arrays are made then.
    results: dict[str, HeldOut] = {}
    start = 0
    for k in range(folds):
        held = order[k::folds]
        train = np.setdiff1d(order, held)
        fitted = (
            good[train]
            if recompressed is None
            else np.concatenate([good[train], recompressed[train]])
        )
        extractor = fit_extractor(fitted, config.features, rng)
        features = extractor.features(fitted)
        synthetic = anomalies.anomalies(good[held], good[train], per_image, rng)
        rows = np.arange(start, start + len(synthetic))
        start += len(synthetic)
        scored = np.concatenate([good[held], synthetic, defect])
        for kind in kinds:
            scorers = extractor.scorers(features, kind, config, rng)
            (peaks,) = _run(extractor.model(scorers), scored, [graph.LEVEL_PEAKS])
            result = results.get(kind) or results.setdefault(
                kind,
                HeldOut(
                    *(np.zeros((rows, peaks.shape[1])) for rows in (n, n * per_image, len(defect)))
                ),
            )
            result.good[held] = peaks[: len(held)]
            result.synthetic[rows] = peaks[len(held) : len(held) + len(synthetic)]
            result.defect += peaks[len(held) + len(synthetic) :] / folds
    return results


# Each good image is also fitted as a JPEG of this quality: what a camera's compression takes
# away (fine sensor grain) must not make a good part look defective, whichever format the
# training images came in. A PNG-trained model rejected every JPEG 92 copy of 30 new grainy
# parts without it.
RECOMPRESS_QUALITY = 85


def recompress(image: Image.Image) -> Image.Image:
    """``image`` through a JPEG encode and decode at RECOMPRESS_QUALITY."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=RECOMPRESS_QUALITY)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def train_model(
    dataset_dir: str | Path, out_dir: str | Path, config: TrainConfig | None = None
) -> ModelCard:
    """Train on ``dataset_dir`` (``good/``, optional ``defect/``) and write ``out_dir``."""
    config = config or TrainConfig()
    fc = config.features
    if config.scorer is not None and config.scorer not in SCORERS:
        raise VisionError(f"scorer must be one of {SCORERS}, got {config.scorer!r}")
    started = time.perf_counter()
    data = load_dataset(dataset_dir, config.roi, config.min_good)
    size = input_shape(*data.region_size, fc)
    good = to_tensor([fit(image, size) for image in data.good.images])
    recompressed = to_tensor([fit(recompress(image), size) for image in data.good.images])
    defect = (
        to_tensor([fit(image, size) for image in data.defect.images])
        if data.defect.images
        else good[:0]
    )
    kinds = (config.scorer,) if config.scorer else SCORERS
    held_out = cross_validate(good, defect, config, kinds, recompressed)
    separations = {kind: held_out[kind].separation() for kind in kinds}
    # Ties go to the bank: it also copes with parts that shift more than the training showed.
    chosen = max(kinds, key=lambda k: (separations[k]["separation"], k == BANK))
    result = held_out[chosen]
    good_scores = result.scores(result.good)
    synthetic_scores = result.scores(result.synthetic)
    threshold = calibration.threshold_for(good_scores, config.false_reject_rate)

    rng = np.random.default_rng(config.seed + 1)
    fitted = np.concatenate([good, recompressed])
    extractor = fit_extractor(fitted, fc, rng)
    scorers = extractor.scorers(extractor.features(fitted), chosen, config, rng)
    model = extractor.model(scorers, result.norms())
    model_bytes = model.SerializeToString()
    validation = {
        "measured_on": (
            "out-of-fold: each good image scored by a model that did not train on it, "
            "synthetic anomalies drawn on those images, and the defect images"
        ),
        "folds": max(2, min(config.folds, len(good) // 2)),
        "scorer": chosen,
        "scorers": separations,
        "expected_false_reject_rate": calibration.expected_false_rejects(good_scores, threshold),
        "false_reject_rate": float(np.mean(good_scores > threshold)),
        "synthetic_recall": float(np.mean(synthetic_scores > threshold)),
        "good_scores": [round(float(s), 6) for s in good_scores],
        "good_score": _summary(good_scores),
        "auroc": separations[chosen]["defect_auroc"],
        "defect_recall": None,
        "defect_score": None,
    }
    if len(defect):
        defect_scores = result.scores(result.defect)
        validation.update(
            defect_recall=float(np.mean(defect_scores > threshold)),
            defect_score=_summary(defect_scores),
        )
    elapsed = time.perf_counter() - started
    framing = Framing(size, config.roi)
    card = ModelCard(
        format_version=FORMAT_VERSION,
        threshold=threshold,
        threshold_method=(
            f"Gumbel fitted to the out-of-fold good scores, quantile "
            f"{1 - config.false_reject_rate:.3f}"
        ),
        preprocessing={
            "input_size": list(framing.size),
            "roi": list(config.roi) if config.roi else None,
            "input": f"{graph.INPUT}: float32[N, {size[1]}, {size[0]}, 3]",
            "steps": [
                "decode the whole frame (every format the same way; no JPEG draft mode)",
                "apply the EXIF orientation; convert to RGB (grey is replicated)",
                "cut the region of interest (roi: left, top, width, height), if any",
                f"resize to cover {size[0]}x{size[1]} keeping the aspect ratio (bilinear, "
                "antialiased), centre-crop the excess",
                "float32 pixel values 0..255, NHWC; standardisation happens in the graph",
            ],
            "training_copies": f"each good image also as JPEG quality {RECOMPRESS_QUALITY}",
        },
        features={**asdict(fc), "opset": graph.OPSET, "ir_version": graph.IR_VERSION},
        validation=validation,
        images={
            "good_used": len(data.good.images),
            "defect_used": len(data.defect.images),
            "skipped": {**data.good.skipped, **data.defect.skipped},
            "source_sizes": dict(
                sorted((data.good.source_sizes + data.defect.source_sizes).items())
            ),
            "mixed_sizes": data.mixed_sizes,
            "resized_to": f"{size[0]}x{size[1]}",
        },
        training_seconds=round(elapsed, 3),
        dataset_sha256=data.sha256,
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_model_dir(out_dir, model_bytes, card)
    log.info(
        "model written to %s (%s scorer, threshold %.4f, %.1f s)",
        out_dir,
        chosen,
        threshold,
        elapsed,
    )
    return card


def _summary(scores: np.ndarray) -> dict[str, float]:
    return {
        "min": float(scores.min()),
        "median": float(np.median(scores)),
        "max": float(scores.max()),
    }
