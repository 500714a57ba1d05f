"""The model card (``model.json``): what the model expects, how it was chosen, how good it is."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mes_vision.errors import ModelFormatError, ModelNotFoundError
from mes_vision.preprocess import Framing

# Bump when model.json or the graph's inputs/outputs change incompatibly. Version 2: region of
# interest and aspect-kept input size, full decode, standardisation and two scorers.
FORMAT_VERSION = 2
MODEL_FILE = "model.onnx"
CARD_FILE = "model.json"


@dataclass
class ModelCard:
    threshold: float
    threshold_method: str
    preprocessing: dict[str, Any]
    features: dict[str, Any]
    validation: dict[str, Any]
    images: dict[str, Any]
    training_seconds: float
    dataset_sha256: str
    model_sha256: str
    created_at: str
    format_version: int = FORMAT_VERSION
    outputs: dict[str, str] = field(
        default_factory=lambda: {
            "score": "float32[N]: image anomaly score, DEFECT when above threshold",
            "anomaly_map": "float32[N, 1, h, w]: local anomaly score per cell, border dropped",
            "level_peaks": "float32[N, levels]: each pyramid level's peak before normalising",
        }
    )

    @property
    def framing(self) -> Framing:
        roi = self.preprocessing.get("roi")
        width, height = self.preprocessing["input_size"]
        return Framing((int(width), int(height)), tuple(int(v) for v in roi) if roi else None)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = CARD_FILE) -> ModelCard:
        """Parse a card; refuse newer format versions and cards missing fields."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelFormatError(f"{source} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ModelFormatError(f"{source} is not a JSON object")
        version = data.get("format_version")
        if not isinstance(version, int):
            raise ModelFormatError(f"{source} has no integer format_version")
        if version > FORMAT_VERSION:
            raise ModelFormatError(
                f"{source} has model format version {version}, newer than version "
                f"{FORMAT_VERSION} that this mes_vision reads: upgrade mes_vision"
            )
        if version < FORMAT_VERSION:
            raise ModelFormatError(
                f"{source} has model format version {version}, older than version "
                f"{FORMAT_VERSION} that this mes_vision reads: retrain the model from its "
                "dataset (python -m mes_vision train DIR --out MODEL_DIR)"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names - data.keys() if n != "outputs")
        if missing:
            raise ModelFormatError(f"{source} lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelCard:
        model_dir = Path(model_dir)
        path = model_dir / CARD_FILE
        if not model_dir.is_dir():
            raise ModelNotFoundError(f"model directory {model_dir} does not exist")
        if not path.is_file():
            raise ModelNotFoundError(f"{path} is missing: not a trained model directory")
        return cls.from_json(path.read_text(encoding="utf-8"), str(path))
