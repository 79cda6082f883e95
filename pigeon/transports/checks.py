"""Checks of the numeric transport options an App is given, run at ``App(...)``.

A bad number must fail where it was written, saying what to pass, not later inside a client
(aio-pika's ``basic.qos`` at start, nats-py's read loop at the first message). ``bool`` is an
``int`` to Python but never a count or a duration here.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection

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


def duration(name: str, value: object, meaning: str) -> float:
    """``value`` if it is a finite number of seconds, 0 or more (int or float, not bool), else
    ``ConfigurationError`` naming ``name`` and saying what it is (``meaning``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ConfigurationError(
            f"{name}={value!r}: give the seconds {meaning}, a finite number, 0 or more"
        )
    return value


APP_OPTIONS = ("codec", "shutdown_timeout", "delivery_limit", "middleware", "passive")
"""``App()``'s own keyword arguments: a misspelled one arrives among the transport's options."""


def unknown_options(
    broker: str,
    given: Collection[str],
    own: Collection[str],
    client: Collection[str] = (),
    whose: str = "",
) -> ConfigurationError | None:
    """The error for the options in ``given`` that are neither pigeon's (``own``) nor the
    client library's (``client``; ``whose`` names them, e.g. "nats-py's connect() takes"), each
    with the closest valid name (``difflib``; ``App()``'s own included), or ``None`` if all are
    known."""
    unknown = sorted(set(given) - set(own) - set(client))
    if not unknown:
        return None
    valid = [*own, *client, *APP_OPTIONS]

    def with_guess(name: str) -> str:
        guesses = difflib.get_close_matches(name, valid, n=1)
        if not guesses:
            return repr(name)
        whose_guess = "App()'s " if guesses[0] in APP_OPTIONS else ""
        return f"{name!r} (did you mean {whose_guess}{guesses[0]!r}?)"

    clients = f", {whose} {sorted(client)}" if client else ""
    return ConfigurationError(
        f"unknown {broker} option{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(map(with_guess, unknown))}; pigeon's are {sorted(own)}{clients}"
    )
