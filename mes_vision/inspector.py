"""Scoring with a trained model: load the ONNX session once, score images against the threshold."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mes_vision import graph
from mes_vision.card import MODEL_FILE, ModelCard
from mes_vision.errors import ModelFormatError, ModelNotFoundError
from mes_vision.preprocess import ImageSource, open_image, to_tensor

GOOD = "GOOD"
DEFECT = "DEFECT"


@dataclass(frozen=True)
class Verdict:
    """One image's result; ``verdict`` uses the values of ``mes_domain.contracts.Verdict``."""

    score: float
    verdict: str
    threshold: float
    anomaly_map: np.ndarray | None = None


class Inspector:
    """A loaded model. Thread-safe: onnxruntime sessions may run concurrently."""

    def __init__(self, session: ort.InferenceSession, card: ModelCard) -> None:
        self.session = session
        self.card = card
        self.threshold = float(card.threshold)
        self.image_size = card.image_size

    @classmethod
    def load(cls, model_dir: str | Path, intra_op_threads: int = 2) -> Inspector:
        """Read the card, check the model file against it and build the session."""
        card = ModelCard.load(model_dir)
        path = Path(model_dir) / MODEL_FILE
        if not path.is_file():
            raise ModelNotFoundError(f"{path} is missing")
        model_bytes = path.read_bytes()
        if hashlib.sha256(model_bytes).hexdigest() != card.model_sha256:
            raise ModelFormatError(f"{path} does not match the sha256 in its model card")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        return cls(session, card)

    def preprocess(self, source: ImageSource) -> np.ndarray:
        """Decode one image to the graph input ``float32[1, S, S, 3]``; raises ``ImageError``."""
        return to_tensor([open_image(source, self.image_size)])

    def score_tensor(self, x: np.ndarray, with_map: bool = False) -> list[Verdict]:
        scores, maps = self.session.run(None, {graph.INPUT: x})
        return [
            Verdict(
                score=float(s),
                verdict=DEFECT if s > self.threshold else GOOD,
                threshold=self.threshold,
                anomaly_map=m[0] if with_map else None,
            )
            for s, m in zip(scores, maps, strict=True)
        ]

    def score_image(self, source: ImageSource, with_map: bool = False) -> Verdict:
        """Score a path, encoded bytes or PIL image; raises ``ImageError`` if it cannot decode."""
        return self.score_tensor(self.preprocess(source), with_map)[0]

    def score_batch(self, sources: Sequence[ImageSource], with_map: bool = False) -> list[Verdict]:
        """Score several images in one graph run; raises ``ImageError`` naming a bad image."""
        if not sources:
            return []
        x = to_tensor([open_image(s, self.image_size) for s in sources])
        return self.score_tensor(x, with_map)
