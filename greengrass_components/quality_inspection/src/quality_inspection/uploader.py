"""Uploads captures to the dataset bucket when the link is up, each exactly once.

Key layout: ``{prefix}/{station}/{good|defect}/{capture name}``, one dataset root per station
(the ``good/`` and ``defect/`` folders that ``mes_vision train`` reads). A capture stays on
disk until S3 accepted it; failures back off exponentially with jitter. A capture found pending
at start-up is first checked with HEAD, because a crash may have come after its upload and
before its marker; the PUT of a deterministic key is idempotent besides.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from mes_domain.quality import LABELS, dataset_key
from quality_inspection.captures import Capture, CaptureStore

log = logging.getLogger(__name__)

UPLOAD_LABELS = LABELS
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def capture_key(prefix: str, site: str, line: str, station: str, label: str, name: str) -> str:
    """Where the cloud's training pipeline looks for the station's images."""
    return dataset_key(site, line, station, label, name, root=prefix)


class Backoff:
    """Exponential backoff with full jitter, capped."""

    def __init__(self, base_s: float = 1.0, max_s: float = 300.0, rng=random.random) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self.failures = 0
        self._rng = rng

    def next_delay(self) -> float:
        self.failures += 1
        ceiling = min(self.max_s, self.base_s * 2 ** min(self.failures - 1, 30))
        return ceiling / 2 + self._rng() * ceiling / 2

    def reset(self) -> None:
        self.failures = 0


def _not_found(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


class Uploader:
    def __init__(
        self,
        store: CaptureStore,
        s3_client: Callable[[], Any],
        *,
        bucket: str,
        prefix: str,
        site: str,
        line: str,
        station: str,
        backoff: Backoff | None = None,
    ) -> None:
        """``s3_client`` is called on first use: on Greengrass, boto3's default chain then
        finds the token exchange service's credentials."""
        self.store = store
        self._s3_factory = s3_client
        self._s3: Any = None
        self.bucket = bucket
        self.prefix = prefix
        self.metadata = {"site": site, "line": line, "station": station}
        self.station = station
        self.backoff = backoff or Backoff()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uploaded = 0

    def key(self, capture: Capture) -> str:
        return capture_key(
            self.prefix, self.metadata["site"], self.metadata["line"], self.station,
            capture.label, capture.name,
        )  # fmt: skip

    def upload_one(self, capture: Capture) -> bool:
        """Upload ``capture`` unless it is already in S3; True when it is there now."""
        if self._s3 is None:
            self._s3 = self._s3_factory()
        key = self.key(capture)
        if capture.recovered:
            try:
                head = self._s3.head_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                if not _not_found(exc):
                    raise
            else:
                if head.get("ContentLength") == capture.size:
                    self.store.mark_uploaded(capture)
                    return True
        body = self.store.read(capture)
        if body is None:
            return True  # evicted meanwhile: nothing left to upload
        suffix = capture.path.suffix.lower()
        self._s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=CONTENT_TYPES.get(suffix, "application/octet-stream"),
            Metadata=self.metadata,
        )
        self.store.mark_uploaded(capture)
        self.uploaded += 1
        return True

    def drain(self) -> int:
        """Upload every pending capture, oldest first, stopping at the first failure.

        Returns how many are still pending; raises nothing (failures are logged)."""
        for capture in self.store.pending(UPLOAD_LABELS):
            if self._stop.is_set():
                break
            try:
                self.upload_one(capture)
            except Exception as exc:
                log.warning("upload of %s failed, will retry: %s", capture.name, exc)
                return len(self.store.pending(UPLOAD_LABELS))
        return len(self.store.pending(UPLOAD_LABELS))

    def run(self) -> None:
        while not self._stop.is_set():
            self.store.added.clear()
            left = self.drain()
            if left and not self._stop.is_set():
                delay = self.backoff.next_delay()
                log.info("%d captures pending upload; retrying in %.1f s", left, delay)
                self._stop.wait(delay)
            else:
                self.backoff.reset()
                # Woken by a new capture, or every minute to be safe.
                self.store.added.wait(60)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="capture-uploader", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self.store.added.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
