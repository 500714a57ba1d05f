"""What every source shares: time, reconnect backoff and rate-limited point errors."""

from __future__ import annotations

import logging
import random
import time

from data_collector.readings import Binding, SourceError

log = logging.getLogger("data_collector.sources")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def where(connection: str, binding: Binding) -> str:
    return f"connection {connection}, station {binding.station}, point {binding.point}"


class Backoff:
    """Exponential backoff with jitter between ``min_s`` and ``max_s`` (each wait is 50-100 % of
    the current step, so gateways that lost the same PLC do not retry in step)."""

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.min_s, self.max_s = min_s, max(min_s, max_s)
        self._step = min_s
        self._rng = rng or random.Random()
        self.attempts = 0

    def next_delay(self) -> float:
        delay = self._step * self._rng.uniform(0.5, 1.0)
        self._step = min(self._step * 2, self.max_s)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self._step = self.min_s
        self.attempts = 0


class PointErrors:
    """Logs a ``SourceError`` for a point at most once per ``every_s`` per kind of failure, with
    how many were suppressed in between, and a line when the point reads again."""

    def __init__(self, connection: str, every_s: float = 60.0) -> None:
        self.connection = connection
        self.every_s = every_s
        self._last: dict[tuple[str, str, str], tuple[float, int]] = {}
        self.reported: list[SourceError] = []  # every error logged (for tests and metrics)
        self.counts: dict[tuple[str, str], int] = {}
        self._failing: set[tuple[str, str]] = set()

    def report(self, binding: Binding, kind: str, detail: str) -> SourceError:
        error = SourceError(f"{where(self.connection, binding)}: {detail}")
        point = (binding.station, binding.point)
        self.counts[point] = self.counts.get(point, 0) + 1
        self._failing.add(point)
        key = (binding.station, binding.point, kind)
        now = time.monotonic()
        last = self._last.get(key)
        if last is None or now - last[0] >= self.every_s:
            suppressed = last[1] if last else 0
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            log.error("%s%s", error, more)
            self.reported.append(error)
            self._last[key] = (now, 0)
        else:
            self._last[key] = (last[0], last[1] + 1)
        return error

    def recovered(self, binding: Binding) -> None:
        point = (binding.station, binding.point)
        if point in self._failing:  # cheap on the hot path: a set lookup
            self._failing.discard(point)
            for key in [k for k in self._last if k[:2] == point]:
                del self._last[key]
            log.info("%s reads again", where(self.connection, binding))
