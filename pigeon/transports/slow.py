"""Slow subscribers made visible: drops counted, one warning per interval per subject.

When a plain subscriber falls behind, the events over its limit are dropped where nobody keeps
them (core NATS: nats-py's pending limits; Redis Pub/Sub: pigeon's own buffer), one at a time.
One warning line per event (thousands a second) drowns the log; ``SlowConsumers`` counts them
(the transport's ``dropped_events``, a metric) and logs one line per subject per ``interval``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

log = logging.getLogger("pigeon")

WARN_INTERVAL = 5.0
"""Seconds between two slow-consumer warnings of one subject."""


class SlowConsumers:
    """Counts events dropped per subscription subject, and warns at most once per ``interval``."""

    def __init__(self, url: str, interval: float = WARN_INTERVAL) -> None:
        self._url = url
        self._interval = interval
        self.dropped: Counter[str] = Counter()
        """Messages dropped since the start, by subscription subject."""
        self._unreported: Counter[str] = Counter()
        self._last_warning: dict[str, float] = {}

    def dropped_one(self, subject: str) -> None:
        """An event of the subscription to ``subject`` was dropped."""
        self.dropped[subject] += 1
        self._unreported[subject] += 1
        now = time.monotonic()
        if now - self._last_warning.get(subject, -self._interval) >= self._interval:
            self._warn(subject, now)

    def flush(self) -> None:
        """Log drops not reported yet (at close)."""
        for subject in list(self._unreported):
            if self._unreported[subject]:
                self._warn(subject, time.monotonic())

    def _warn(self, subject: str, now: float) -> None:
        count, self._unreported[subject] = self._unreported[subject], 0
        self._last_warning[subject] = now
        log.warning(
            "pigeon: %s: slow consumer on %r dropped %d messages (%d in all); handle faster, "
            "raise concurrency, or raise the subscription's max_pending (NATS: and the App's "
            "pending_bytes_limit)",
            self._url,
            subject,
            count,
            self.dropped[subject],
        )
