"""Observers: what metrics and tracing see of every message, with no cost when there are none.

An ``Observer`` is told when a message is sent (it may add headers, e.g. W3C trace context), wraps
each handled delivery (a span, a duration), and hears each delivery's outcome. ``App.observe``
adds one; ``pigeon.metrics.PrometheusMetrics`` and ``pigeon.tracing.OpenTelemetryTracing`` are the
two shipped with the optional extras.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Protocol


class Outcome(enum.Enum):
    """How the handling of one delivery ended (or, for ``RETRIED``, one call of it)."""

    PROCESSED = "processed"
    FAILED = "failed"
    RETRIED = "retried"
    REDELIVERED = "redelivered"
    DEAD_LETTERED = "dead_lettered"


class Observer(Protocol):
    """Sees messages go out and come in. Its methods must be quick and must not raise."""

    def sending(self, pattern: str, subject: str, headers: dict[str, str]) -> None:
        """A message is about to be sent on ``subject``; ``headers`` may be added to."""
        ...

    def handling(
        self, pattern: str, subject: str, headers: Mapping[str, str]
    ) -> AbstractContextManager[object]:
        """Wraps the handling of one delivery, from decoding to settling."""
        ...

    def outcome(self, pattern: str, subject: str, outcome: Outcome) -> None:
        """One delivery ended with ``outcome`` (``RETRIED``: one more in-process call)."""
        ...

    def requested(self, subject: str, seconds: float, error: str | None) -> None:
        """A request to ``subject`` finished after ``seconds``; ``error`` names its exception."""
        ...


class Observers(list[Observer]):
    """The observers of one App; patterns hold this list, so observers added later are seen."""

    def sending(self, pattern: str, subject: str, headers: dict[str, str]) -> None:
        """Tell every observer a message is about to be sent."""
        for observer in self:
            observer.sending(pattern, subject, headers)

    def handling(
        self, pattern: str, subject: str, headers: Mapping[str, str]
    ) -> AbstractContextManager[object]:
        """Every observer's ``handling`` context around one delivery, as one."""
        if len(self) == 1:
            return self[0].handling(pattern, subject, headers)
        return self._all_handling(pattern, subject, headers)

    @contextlib.contextmanager
    def _all_handling(
        self, pattern: str, subject: str, headers: Mapping[str, str]
    ) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for observer in self:
                stack.enter_context(observer.handling(pattern, subject, headers))
            yield

    def outcome(self, pattern: str, subject: str, outcome: Outcome) -> None:
        """Tell every observer how a delivery ended."""
        for observer in self:
            observer.outcome(pattern, subject, outcome)

    def requested(self, subject: str, seconds: float, error: str | None) -> None:
        """Tell every observer a request finished."""
        for observer in self:
            observer.requested(subject, seconds, error)
