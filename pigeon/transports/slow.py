"""Dropped events made visible: counted by subscription, one warning per interval.

When a plain subscriber falls behind, the events over its limit are dropped where nobody keeps
them (core NATS: nats-py's pending limits; Redis Pub/Sub: pigeon's own buffer), one at a time.
One warning line per event (thousands a second) drowns the log; ``SlowConsumers`` counts them
(the transport's ``dropped_events``, a metric) and logs one line per subscription per
``interval``. A subscription closed while it holds events nobody keeps drops them too: one line
with how many, counted alike.

Drops are keyed by the subscription's subject as its handler declared it (wildcards included),
never by an event's concrete subject: that would make a label and a warning per subject.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

log = logging.getLogger("pigeon")

WARN_INTERVAL = 5.0
"""Seconds between two slow-consumer warnings of one subscription."""


class SlowConsumers:
    """Counts events dropped per subscription subject, and warns at most once per ``interval``.

    ``advice``: what to raise, in the transport's own options (ends the slow-consumer warning).
    """

    def __init__(
        self,
        url: str,
        *,
        advice: str = "raise the subscription's max_pending",
        interval: float = WARN_INTERVAL,
    ) -> None:
        self._url = url
        self._advice = advice
        self._interval = interval
        self.dropped: Counter[str] = Counter()
        """Messages dropped since the start, by subscription subject."""
        self._unreported: Counter[str] = Counter()
        self._last_warning: dict[str, float] = {}

    def dropped_one(self, subject: str) -> None:
        """An event of the subscription to ``subject`` (as declared) was dropped."""
        self.dropped[subject] += 1
        self._unreported[subject] += 1
        now = time.monotonic()
        if now - self._last_warning.get(subject, -self._interval) >= self._interval:
            self._warn(subject, now)

    def dropped_at_close(self, subject: str, count: int, why: str) -> None:
        """The subscription to ``subject`` closed holding ``count`` events nobody keeps (``why``:
        what the transport would advise): count them and say so in one line."""
        if count <= 0:
            return
        self.dropped[subject] += count
        log.warning(
            "pigeon: %s: closing the subscription to %r dropped %d events it held (%s)",
            self._url,
            subject,
            count,
            why,
        )

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
            "raise concurrency, or %s",
            self._url,
            subject,
            count,
            self.dropped[subject],
            self._advice,
        )
