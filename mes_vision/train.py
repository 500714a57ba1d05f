"""Training: fit the model of "good", choose the threshold on held-out images, write the model."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from mes_vision import graph
from mes_vision.card import FORMAT_VERSION, ModelCard
from mes_vision.dataset import MIN_GOOD_IMAGES, load_dataset
from mes_vision.features import (
    FeatureConfig,
    fit_filter_bank,
    fit_good_model,
    sample_patches,
)
from mes_vision.metrics import auroc, choose_threshold
from mes_vision.preprocess import to_tensor
from mes_vision.store import write_model_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    # Good images are split into this many folds; each fold is scored by a model fitted on
    # the others, so every good image gets an honest held-out score for the threshold.
    folds: int = 5
    threshold_margin: float = 0.5
    shrinkage: float = 4.0
    seed: int = 0
    min_good: int = MIN_GOOD_IMAGES


def _run(model: onnx.ModelProto, x: np.ndarray, batch: int = 16) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    parts = [session.run(None, {graph.INPUT: x[i : i + batch]}) for i in range(0, len(x), batch)]
    return [np.concatenate(p) for p in zip(*parts, strict=True)]


def fit(x: np.ndarray, config: TrainConfig) -> onnx.ModelProto:
    """Fit the full scoring model to good images ``x[N, S, S, 3]`` (pixel values 0..255)."""
    fc = config.features
    rng = np.random.default_rng(config.seed)
    pixels = x.transpose(0, 3, 1, 2) / 255.0
    stage1 = fit_filter_bank(
        sample_patches(pixels, fc.kernel1, fc.patches_per_stage, rng), fc.channels1, 3
    )
    (h1,) = _run(graph.build_model(fc, stage1), x)
    stage2 = fit_filter_bank(
        sample_patches(h1, fc.kernel2, fc.patches_per_stage, rng), fc.channels2, fc.channels1
    )
    (features,) = _run(graph.build_model(fc, stage1, stage2), x)
    groups = graph.feature_groups(fc) if fc.score_groups else None
    good = fit_good_model(features, shrinkage=config.shrinkage, groups=groups)
    return graph.build_model(fc, stage1, stage2, good)


def score(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    if not len(x):
        return np.zeros(0, np.float32)
    return _run(model, x)[0]


def cross_validate(
    good: np.ndarray, defect: np.ndarray, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out scores of every good image and the mean defect score over the fold models."""
    folds = max(2, min(config.folds, len(good) // 2))
    order = np.random.default_rng(config.seed).permutation(len(good))
    good_scores = np.zeros(len(good), np.float64)
    defect_scores = np.zeros(len(defect), np.float64)
    for k in range(folds):
        held = order[k::folds]
        model = fit(np.delete(good, held, axis=0), config)
        good_scores[held] = score(model, good[held])
        defect_scores += score(model, defect) / folds
    return good_scores, defect_scores


def train_model(
    dataset_dir: str | Path, out_dir: str | Path, config: TrainConfig | None = None
) -> ModelCard:
    """Train on ``dataset_dir`` (``good/``, optional ``defect/``) and write ``out_dir``."""
    config = config or TrainConfig()
    fc = config.features
    started = time.perf_counter()
    data = load_dataset(dataset_dir, fc.image_size, config.min_good)
    good = to_tensor(data.good.images)
    defect = to_tensor(data.defect.images) if data.defect.images else good[:0]
    good_scores, defect_scores = cross_validate(good, defect, config)
    threshold, method = choose_threshold(good_scores, defect_scores, config.threshold_margin)
    model = fit(good, config)
    model_bytes = model.SerializeToString()
    validation = {
        "measured_on": (
            "held-out good images (cross-validation folds) and the defect images; "
            "the same images chose the threshold, so these figures are optimistic"
        ),
        "folds": max(2, min(config.folds, len(good) // 2)),
        "false_reject_rate": float(np.mean(good_scores > threshold)),
        "good_score": _summary(good_scores),
        "auroc": None,
        "defect_recall": None,
        "defect_score": None,
    }
    if len(defect):
        validation.update(
            auroc=auroc(good_scores, defect_scores),
            defect_recall=float(np.mean(defect_scores > threshold)),
            defect_score=_summary(defect_scores),
        )
    elapsed = time.perf_counter() - started
    card = ModelCard(
        format_version=FORMAT_VERSION,
        threshold=threshold,
        threshold_method=method,
        preprocessing={
            "size": fc.image_size,
            "input": f"{graph.INPUT}: float32[N, {fc.image_size}, {fc.image_size}, 3]",
            "steps": [
                "decode (JPEG at the smallest DCT scale not below size, Image.draft)",
                "convert to RGB (grey is replicated)",
                f"resize to {fc.image_size}x{fc.image_size}, bilinear, aspect ratio not kept",
                "float32 pixel values 0..255, NHWC; scaling happens in the graph",
            ],
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
            "resized_to": f"{fc.image_size}x{fc.image_size}",
        },
        training_seconds=round(elapsed, 3),
        dataset_sha256=data.sha256,
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_model_dir(out_dir, model_bytes, card)
    log.info("model written to %s (threshold %.4f, %s)", out_dir, threshold, method)
    return card


def _summary(scores: np.ndarray) -> dict[str, float]:
    return {
        "min": float(scores.min()),
        "median": float(np.median(scores)),
        "max": float(scores.max()),
    }
