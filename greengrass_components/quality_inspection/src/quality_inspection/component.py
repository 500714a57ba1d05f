"""The inspection loop: take an image, score it, publish the result, keep or drop the file.

One thread inspects, so results leave in the order images were taken. For each image:

1. score it with the current model (a corrupt image gives an ERROR result, not a crash; so
   does a symbolic link or an empty file in the inbox, without being read);
2. publish the ``InspectionResult`` (QoS 1); if that fails the file stays in the inbox, or the
   trigger in its queue, and is retried, so no image is lost;
3. then move it to the capture store (DEFECT, ERROR, or a sampled GOOD), to ``rejected/`` (a
   rejected inbox entry) or delete it, and ack the trigger.

Triggers are kept in a durable queue (SQLite) from the moment they arrive until step 3, so a
crash or ``kill -9`` loses none. A restart after step 2 and before step 3 inspects that image
again: results are at least once, and the repeat carries the same part_id. A publish that
failed leaves no copy behind in the transport, so a retry is the only repeat.

A model swap (``apply_config``) loads and validates the new model on the caller's thread and
replaces one reference; the loop reads that reference once per image, so every image is
scored wholly by one model and none waits or is dropped.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from greengrass_components.common.durable_queue import DurableQueue
from greengrass_components.common.transport import Transport, TransportError
from mes_domain.contracts import InspectionResult, Verdict
from quality_inspection.captures import CaptureStore, capture_name
from quality_inspection.config import ComponentConfig
from quality_inspection.models import LoadedModel, ModelUnavailable, load_model
from quality_inspection.sources import FolderWatcher, ImageJob, TriggerError, parse_trigger
from quality_inspection.uploader import UPLOAD_LABELS, Backoff, capture_key

log = logging.getLogger(__name__)

MAX_REASON = 1024


class QualityInspection:
    def __init__(
        self,
        config: ComponentConfig,
        transport: Transport,
        model: LoadedModel,
        captures: CaptureStore | None,
        *,
        model_loader: Callable[..., LoadedModel] = load_model,
        default_model_dir: Path | None = None,
        rng: Callable[[], float] = random.random,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        trigger_queue: DurableQueue | None = None,
    ) -> None:
        self.config = config
        self.transport = transport
        self.model = model
        self.captures = captures
        self.watcher = FolderWatcher(config.camera.inbox_dir, config.camera.settle_ms)
        camera = config.camera
        self.triggers = trigger_queue or DurableQueue(
            camera.trigger_queue, max_items=camera.trigger_queue_max_items
        )
        self._trigger_arrived = threading.Event()
        self._model_loader = model_loader
        self._default_model_dir = default_model_dir
        self._swap_lock = threading.Lock()
        self._rng = rng
        self._clock_ms = clock_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publish_backoff = Backoff(base_s=0.2, max_s=10.0)
        self.results: list[InspectionResult] = []  # recent results, for the caller's metrics

    # -- sources ---------------------------------------------------------------------------

    def subscribe_triggers(self) -> None:
        topic = self.config.camera.trigger_topic
        if topic:
            self.transport.subscribe(topic, self.on_trigger)

    def on_trigger(self, topic: str, payload: bytes) -> None:
        """Transport callback: queue the image durably; never raises."""
        try:
            job = parse_trigger(payload, self.config.camera.trigger_root)
        except TriggerError as exc:
            log.error("ignoring trigger on %s: %s", topic, exc)
            return
        try:
            self.triggers.put({"image_path": str(job.path), "part_id": job.part_id})
        except Exception:
            log.exception("cannot queue the trigger for %s; it is lost", job.part_id)
            return
        self._trigger_arrived.set()

    def queued_triggers(self, limit: int = 100) -> list[ImageJob]:
        """The oldest queued triggers; each stays queued until its result is published."""
        jobs = []
        for entry in self.triggers.peek(limit):
            data = entry.json()
            jobs.append(ImageJob(Path(data["image_path"]), data["part_id"], False, None, entry.id))
        return jobs

    # -- one image -------------------------------------------------------------------------

    def inspect(self, job: ImageJob) -> InspectionResult:
        """Score, publish, then keep or drop the file. Raises ``TransportError`` if the result
        could not be published (the file is then left where it was)."""
        model = self.model  # read once: a swap takes effect between images, never within one
        started = time.perf_counter()
        score = threshold = reason = None
        try:
            if job.reject_reason:
                raise ValueError(f"{job.path.name} is {job.reject_reason}")
            verdict_obj = model.inspector.score_image(job.path.read_bytes())
            verdict = Verdict(verdict_obj.verdict)
            score, threshold = verdict_obj.score, verdict_obj.threshold
        except Exception as exc:
            verdict = Verdict.ERROR
            reason = (str(exc) or type(exc).__name__)[:MAX_REASON]
            log.warning("cannot inspect %s: %s", job.path, reason)
        latency_ms = (time.perf_counter() - started) * 1000
        ts = self._clock_ms()
        label = None if job.reject_reason else self._capture_label(verdict)
        name = capture_name(ts, job.part_id, job.path.suffix) if label else None
        result = InspectionResult(
            v=1,
            ts=ts,
            part_id=job.part_id,
            verdict=verdict,
            score=score,
            threshold=threshold,
            model_id=model.model_id,
            model_version=model.model_version,
            latency_ms=round(latency_ms, 3),
            image_key=self._image_key(label, name),
            reason=reason,
        )
        self.transport.publish(
            self.config.publish_topic, result.model_dump_json(exclude_none=True).encode()
        )
        self._keep_or_drop(job, label, name)
        return result

    def _capture_label(self, verdict: Verdict) -> str | None:
        if self.captures is None:
            return None
        if verdict is Verdict.DEFECT:
            return "defect"
        if verdict is Verdict.ERROR:
            return "error"
        return "good" if self._rng() < self.config.capture.good_sample_rate else None

    def _image_key(self, label: str | None, name: str | None) -> str | None:
        capture = self.config.capture
        if label not in UPLOAD_LABELS or not capture.upload_bucket or name is None:
            return None
        s = self.config.station
        key = capture_key(capture.upload_prefix, s.site, s.line, s.station, label, name)
        return f"s3://{capture.upload_bucket}/{key}"

    def _keep_or_drop(self, job: ImageJob, label: str | None, name: str | None) -> None:
        if job.reject_reason:
            self.watcher.reject(job)
            return
        try:
            if label and name and self.captures is not None and job.path.exists():
                self.captures.add(job.path, label, name, move=job.owned)
            elif job.owned:
                job.path.unlink(missing_ok=True)
        except OSError:
            log.exception("could not keep or remove %s", job.path)
            if job.owned:  # never inspect it twice because the capture disk is failing
                job.path.unlink(missing_ok=True)

    # -- the loop --------------------------------------------------------------------------

    def run_once(self, wait_s: float = 0.0) -> int:
        """One poll of the inbox plus the queued triggers; returns how many were published."""
        self._trigger_arrived.clear()
        jobs = self.watcher.poll() + self.queued_triggers()
        if not jobs and wait_s:
            self._trigger_arrived.wait(wait_s)
            jobs = self.queued_triggers()
        done = 0
        for job in jobs:
            try:
                self.results.append(self.inspect(job))
            except TransportError as exc:
                # Inbox files come back by themselves, triggers stay queued until acked.
                log.error("result for %s not published, will retry: %s", job.part_id, exc)
                self._stop.wait(self._publish_backoff.next_delay())
                break
            self._publish_backoff.reset()
            if job.queue_id is not None:
                self.triggers.ack([job.queue_id])
            if job.owned:
                self.watcher.forget(job)
            done += 1
        del self.results[:-1000]
        return done

    def run(self) -> None:
        interval = self.config.camera.poll_interval_ms / 1000
        while not self._stop.is_set():
            try:
                self.run_once(wait_s=interval)
            except Exception:
                log.exception("inspection loop error; carrying on")
                self._stop.wait(interval)

    def start(self) -> None:
        self.subscribe_triggers()
        self._thread = threading.Thread(target=self.run, name="quality-inspection", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._trigger_arrived.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # -- configuration updates -------------------------------------------------------------

    def apply_config(self, new: ComponentConfig) -> bool:
        """Apply a validated configuration; swap the model if its section changed.

        A model that fails to load or validate keeps the old one and returns False.
        """
        with self._swap_lock:
            old = self.config
            if new.model != old.model:
                try:
                    loaded = self._model_loader(new.model, self._default_model_dir)
                except ModelUnavailable as exc:
                    log.error("model update rejected, keeping %s: %s", self.model.model_dir, exc)
                    return False
                self.model = loaded  # one reference assignment: atomic between images
                log.info(
                    "model swapped to %s %s from %s",
                    loaded.model_id,
                    loaded.model_version,
                    loaded.model_dir,
                )
            if self.captures is not None:
                self.captures.max_bytes = new.capture.max_bytes
                self.captures.max_files = new.capture.max_files
                self.captures.min_free_bytes = new.capture.min_free_bytes
            restart_only = ("station", "camera", "publish_topic")
            changed = [f for f in restart_only if getattr(new, f) != getattr(old, f)]
            upload = ("dir", "upload_bucket", "upload_prefix")  # the uploader is built at start
            if any(getattr(new.capture, f) != getattr(old.capture, f) for f in upload):
                changed.append("capture dir/upload")
                kept = {f: getattr(old.capture, f) for f in upload}
                new = new.model_copy(update={"capture": new.capture.model_copy(update=kept)})
            if changed:
                log.warning("%s take effect at the next restart", ", ".join(changed))
                new = new.model_copy(update={f: getattr(old, f) for f in restart_only})
            self.config = new
            return True
