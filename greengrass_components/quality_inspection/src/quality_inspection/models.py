"""The model in use: loaded once from the model component's folder, validated before use."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from mes_vision import Inspector, VisionError
from quality_inspection.config import ModelConfig


class ModelUnavailable(RuntimeError):
    """The model component's folder or files are missing or unusable; the message names it."""


@dataclass(frozen=True)
class LoadedModel:
    inspector: Inspector
    model_id: str
    model_version: str
    model_dir: Path


def resolve_model_dir(config: ModelConfig, default_dir: Path | None) -> Path:
    """``model.dir`` from the configuration, else the dependency's folder from the command line."""
    model_dir = config.dir or default_dir
    if model_dir is None:
        raise ModelUnavailable(
            f"no model folder: set model.dir or pass --model-dir (the artifacts folder of "
            f"{config.component_name})"
        )
    return model_dir


def load_model(config: ModelConfig, default_dir: Path | None = None) -> LoadedModel:
    """Load and smoke-test the model; raise ``ModelUnavailable`` naming the path."""
    model_dir = resolve_model_dir(config, default_dir)
    try:
        inspector = Inspector.load(model_dir, intra_op_threads=config.intra_op_threads)
        # One inference on a flat grey image proves the graph runs and scores finitely.
        probe = inspector.score_image(Image.new("RGB", inspector.card.framing.size, (128,) * 3))
    except VisionError as exc:
        raise ModelUnavailable(
            f"model component {config.component_name} is not usable at {model_dir}: {exc}"
        ) from exc
    except Exception as exc:  # onnxruntime raises its own types for a broken graph
        raise ModelUnavailable(
            f"model at {model_dir} failed to load or run: {type(exc).__name__}: {exc}"
        ) from exc
    if not math.isfinite(probe.score):
        raise ModelUnavailable(f"model at {model_dir} gives a non-finite score")
    version = config.version or f"sha256:{inspector.card.model_sha256[:12]}"
    return LoadedModel(inspector, config.model_id or config.component_name, version, model_dir)
