"""Checks of the ``pigeon`` command's numbers, ports and levels, run while its arguments are
parsed: a bad one is a usage error naming the option (exit 2), before any App is imported or
broker asked, in command-line words (``--timeout 5``, not ``timeout=5``).

Each is a typer ``callback``; typer's own ``min=`` lets NaN through where it has no ``max=``
and never refuses infinity, so seconds are checked here."""

from __future__ import annotations

import math
from collections.abc import Callable

import typer

from pigeon import delays
from pigeon.errors import ConfigurationError

HIGHEST_PORT = 65_535
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def port(value: int | None) -> int | None:
    """A TCP port to listen on, 1 to 65535 (0, "any free port", would be unknown to the user)."""
    if value is not None and not 1 <= value <= HIGHEST_PORT:
        raise typer.BadParameter(f"{value}: give a port from 1 to {HIGHEST_PORT}")
    return value


def last_port(option: str, value: int | None, workers: int) -> None:
    """Worker *i* of ``--workers`` listens on ``value`` + *i*: the last must be a port too."""
    if value is not None and value + workers - 1 > HIGHEST_PORT:
        raise typer.BadParameter(
            f"{value}: worker {workers - 1} of --workers {workers} would listen on "
            f"{value + workers - 1}; give a port up to {HIGHEST_PORT - workers + 1}",
            param_hint=f"'{option}'",
        )


def log_level(value: str) -> str:
    """A level name of ``logging``, in any case; returned in capitals."""
    name = value.upper()
    if name not in LEVELS:
        raise typer.BadParameter(f"{value!r}: give one of {', '.join(LEVELS)}")
    return name


def seconds(
    low: float, example: str, *, low_allowed: bool = True
) -> Callable[[float | None], float | None]:
    """A callback taking a finite number of seconds from ``low`` (more than ``low`` if not
    ``low_allowed``); ``example`` is a good value, shown in the error."""
    least = f"{low:g} or more" if low_allowed else f"more than {low:g}"

    def check(value: float | None) -> float | None:
        if value is None:
            return None
        fits = value >= low if low_allowed else value > low
        if not (math.isfinite(value) and fits):
            raise typer.BadParameter(
                f"{value:g}: give a finite number of seconds, {least} ({example})"
            )
        return value

    return check


def delay(value: float | None) -> float | None:
    """``pigeon enqueue --delay``: seconds from 0 to ``delays.MAX_DELAY``."""
    if value is None:
        return None
    try:
        return delays.check_delay(value, f"{value:g}")
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc)) from exc
