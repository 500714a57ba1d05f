"""Scoring with a trained model: load the ONNX session once, score images against the threshold."""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mes_vision import graph
from mes_vision.card import MODEL_FILE, ModelCard
from mes_vision.errors import ImageError, ModelFormatError, ModelNotFoundError
from mes_vision.preprocess import ImageSource, open_image, to_tensor

GOOD = "GOOD"
DEFECT = "DEFECT"
ERROR = "ERROR"


@dataclass(frozen=True)
class Verdict:
    """One image's result; ``verdict`` uses the values of ``mes_domain.contracts.Verdict``.

    ``ERROR`` (only from ``score_stream``): the image could not be decoded, ``reason`` says
    why and ``score`` is NaN.
    """

    score: float
    verdict: str
    threshold: float
    anomaly_map: np.ndarray | None = None
    reason: str | None = None


class Inspector:
    """A loaded model. Thread-safe: onnxruntime sessions may run concurrently."""

    def __init__(self, session: ort.InferenceSession, card: ModelCard) -> None:
        self.session = session
        self.card = card
        self.threshold = float(card.threshold)
        self.framing = card.framing

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
        """Decode one image to the graph input ``float32[1, H, W, 3]``; raises ``ImageError``."""
        return to_tensor([open_image(source, self.framing)])

    def score_tensor(self, x: np.ndarray, with_map: bool = False) -> list[Verdict]:
        scores, maps = self.session.run([graph.SCORE, graph.ANOMALY_MAP], {graph.INPUT: x})
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
        x = to_tensor([open_image(s, self.framing) for s in sources])
        return self.score_tensor(x, with_map)

    def score_stream(
        self,
        sources: Iterable[ImageSource],
        batch_size: int = 8,
        with_map: bool = False,
        workers: int = 2,
    ) -> Iterator[Verdict]:
        """Score a stream of images (a camera station's feed): one ``Verdict`` per source, in
        input order, as soon as its batch is done.

        ``workers`` threads each decode a batch of ``batch_size`` and run the graph on it,
        up to ``workers + 1`` batches ahead of the consumer. Pillow's decoder and onnxruntime
        release the GIL, so the workers overlap decoding with the graph and throughput nears
        ``workers`` / (decode + graph time per image), with the graph's per-call overhead
        shared by the batch. Load the inspector with ``intra_op_threads=1`` and use one
        worker per core. A source that cannot be decoded gives an ``ERROR`` verdict in its
        place and the stream goes on. ``sources`` is read lazily on the calling thread.
        """
        if batch_size < 1 or workers < 1:
            raise ValueError("batch_size and workers must be at least 1")
        items = iter(sources)
        pending: deque[Future] = deque()
        with ThreadPoolExecutor(workers, thread_name_prefix="mes_vision-score") as pool:

            def submit() -> None:
                chunk = list(islice(items, batch_size))
                if chunk:
                    pending.append(pool.submit(self._score_chunk, chunk, with_map))

            try:
                for _ in range(workers + 1):
                    submit()
                while pending:
                    verdicts = pending.popleft().result()
                    submit()
                    yield from verdicts
            finally:
                for future in pending:
                    future.cancel()

    def _score_chunk(self, chunk: list[ImageSource], with_map: bool) -> list[Verdict]:
        """Verdicts of ``chunk`` in order, ``ERROR`` for a source that cannot be decoded."""
        images, reasons = [], []
        for source in chunk:
            try:
                images.append(open_image(source, self.framing))
                reasons.append(None)
            except ImageError as exc:
                reasons.append(str(exc))
        scored = iter(self.score_tensor(to_tensor(images), with_map) if images else [])
        return [
            next(scored)
            if reason is None
            else Verdict(math.nan, ERROR, self.threshold, None, reason)
            for reason in reasons
        ]
