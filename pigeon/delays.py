"""When a delayed job falls due: ``enqueue(delay=...)`` and ``enqueue(at=...)`` in seconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pigeon.errors import ConfigurationError

MAX_DELAY = 100 * 365.25 * 86_400
"""The longest delay pigeon holds a job or a redelivery for: 100 years, in seconds. Brokers count
delays in integers that a larger one overflows (JetStream's nanoseconds: 292 years)."""


def seconds_until(delay: float | None, at: datetime | None, *, now: float | None = None) -> float:
    """Seconds from ``now`` (epoch seconds, default the wall clock) until a job is due.

    ``delay`` is seconds from now, ``at`` an aware datetime; give at most one. A past ``at`` and
    a zero delay give 0 (due at once). Raises ``ConfigurationError`` for both, for a negative,
    infinite or NaN delay, one over ``MAX_DELAY`` (or an ``at`` further away) and for a naive
    datetime (whose time zone pigeon would have to guess).
    """
    if delay is not None and at is not None:
        raise ConfigurationError(
            "give enqueue either delay= (seconds) or at= (a datetime), not both"
        )
    if at is not None:
        if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
            raise ConfigurationError(
                f"at={at!r}: give an aware datetime, e.g. datetime.now(UTC) + timedelta(minutes=10)"
                " or datetime(2030, 1, 1, 9, tzinfo=ZoneInfo('Europe/Paris'))"
            )
        now = time.time() if now is None else now
        return check_delay(max(0.0, at.astimezone(UTC).timestamp() - now), f"at={at!r}")
    if delay is None:
        return 0.0
    return check_delay(delay, f"delay={delay!r}")


def check_delay(seconds: float, what: str) -> float:
    """``seconds`` as a float if it is a number from 0 to ``MAX_DELAY``; else raise
    ``ConfigurationError`` beginning with ``what`` (how the caller gave it)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ConfigurationError(f"{what}: give a number of seconds (e.g. 600)")
    if not 0 <= seconds <= MAX_DELAY:  # False for NaN too; an int of any size compares
        raise ConfigurationError(
            f"{what}: give seconds from 0 (now) to {MAX_DELAY:.0f} (100 years); a delay cannot "
            "be negative, infinite or NaN"
        )
    return float(seconds)


def due_header(delay: float, *, now: float | None = None) -> str:
    """The ``x-pigeon-due`` header value of a job due in ``delay`` seconds: epoch seconds."""
    return f"{(time.time() if now is None else now) + delay:.3f}"


def seconds_left(due: str | None, *, now: float | None = None) -> float:
    """Seconds until the ``x-pigeon-due`` value ``due``; 0 when absent, unreadable or past."""
    if not due:
        return 0.0
    try:
        left = float(due) - (time.time() if now is None else now)
    except ValueError:
        return 0.0
    return left if left > 0 else 0.0


def parse_time(text: str | None) -> datetime | None:
    """An aware datetime from ISO 8601 ``text`` (``2030-01-01T09:00Z``, ``...+01:00``); ``None``
    for ``None``. Raises ``ConfigurationError`` for text that is not ISO 8601 or has no offset.
    """
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigurationError(f"{text!r} is not an ISO 8601 time: {exc}") from None
    if when.tzinfo is None:
        raise ConfigurationError(
            f"{text!r} has no UTC offset; add one, e.g. {text}Z (UTC) or {text}+01:00"
        )
    return when
