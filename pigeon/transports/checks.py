"""Checks of the numeric transport options an App is given, run at ``App(...)``.

A bad number must fail where it was written, saying what to pass, not later inside a client
(aio-pika's ``basic.qos`` at start, nats-py's read loop at the first message). ``bool`` is an
``int`` to Python but never a count or a duration here.
"""

from __future__ import annotations

from pigeon.errors import ConfigurationError


def whole_number(name: str, value: object, low: int = 1, high: int | None = None) -> int:
    """``value`` if it is an int from ``low`` to ``high`` (inclusive; no upper bound if
    ``None``), else ``ConfigurationError`` naming ``name`` and the range."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        upper = f" to {high:,}" if high is not None else " or more"
        raise ConfigurationError(f"{name}={value!r}: give a whole number, {low:,}{upper}")
    return value


def seconds(name: str, value: object) -> float:
    """``value`` if it is a positive number (int or float, not bool), else
    ``ConfigurationError``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{name}={value!r}: give a positive number of seconds")
    return value
