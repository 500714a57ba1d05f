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

    def score_stream(
        self,
        sources: Iterable[ImageSource],
        batch_size: int = 4,
        with_map: bool = False,
        decode_threads: int = 1,
    ) -> Iterator[Verdict]:
        """Score a stream of images (a camera station's feed): one ``Verdict`` per source, in
        input order, as soon as its batch is scored.

        Decoding runs on ``decode_threads`` background threads (Pillow releases the GIL) up to
        ``decode_threads + 1`` batches ahead, while the graph runs batches of ``batch_size`` on
        the calling thread, so throughput approaches that of the slower stage instead of their
        sum. For this overlap, load the inspector with fewer intra-op threads (1 on 2 cores).
        A source that cannot be decoded gives an ``ERROR`` verdict in its place and the stream
        goes on. ``sources`` is read lazily, a batch at a time, on the calling thread.
        """
        if batch_size < 1 or decode_threads < 1:
            raise ValueError("batch_size and decode_threads must be at least 1")
        items = iter(sources)
        pending: deque[Future] = deque()
        with ThreadPoolExecutor(decode_threads, thread_name_prefix="mes_vision-decode") as pool:

            def submit() -> None:
                chunk = list(islice(items, batch_size))
                if chunk:
                    pending.append(pool.submit(self._decode, chunk))

            try:
                for _ in range(decode_threads + 1):
                    submit()
                while pending:
                    x, errors = pending.popleft().result()
                    submit()
                    yield from self._merge(x, errors, with_map)
            finally:
                for future in pending:
                    future.cancel()

    def _decode(self, chunk: list[ImageSource]) -> tuple[np.ndarray | None, list[str | None]]:
        """The graph input of the decodable images of ``chunk`` and, per image, why not."""
        images, errors = [], []
        for source in chunk:
            try:
                images.append(open_image(source, self.image_size))
                errors.append(None)
            except ImageError as exc:
                errors.append(str(exc))
        return (to_tensor(images) if images else None), errors

    def _merge(
        self, x: np.ndarray | None, errors: list[str | None], with_map: bool
    ) -> Iterator[Verdict]:
        scored = iter(self.score_tensor(x, with_map) if x is not None else [])
        for reason in errors:
            if reason is None:
                yield next(scored)
            else:
                yield Verdict(math.nan, ERROR, self.threshold, None, reason)
