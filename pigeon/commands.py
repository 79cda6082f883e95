"""What the ``pigeon`` commands share: the App a command names (``module:app``), an App
connected to the broker of ``--url``, and pigeon's errors as one ``error: …`` line with the exit
code a supervisor or a script can act on (2: a mistake in code or settings, 1: anything else)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import typer

from pigeon.app import App
from pigeon.errors import ConfigurationError, PigeonError
from pigeon.supervisor import EXIT_CONFIGURATION

T = TypeVar("T")


def load_app(target: str) -> App:
    """Import ``module:attribute`` and return the App it names; a clear error otherwise."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise typer.BadParameter(f"{target!r}: give it as module:app, e.g. examples.shop:app")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ConfigurationError as exc:  # its App(...): one line, as every command says it
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIGURATION) from exc
    except Exception as exc:  # not found, or the module itself fails: say which, briefly
        raise typer.BadParameter(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        apps = [name for name, value in vars(module).items() if isinstance(value, App)]
        found = (
            f"module {module_name!r} has no attribute {attribute!r}"
            if app is None
            else (f"{target!r} is {type(app).__name__}, not a pigeon App")
        )
        hint = f"; its Apps: {', '.join(apps)}" if apps else ""
        raise typer.BadParameter(found + hint)
    return app


def with_app(url: str | None, action: Callable[[App], Awaitable[T]]) -> T:
    """Run ``action`` on an App connected to ``url`` (else ``$PIGEON_URL``). A command that
    talks to a broker never falls back to memory:// (it would answer from an empty broker of its
    own): without a URL it exits 2 saying what to set. The App only sends and reads, so it uses
    queues as they exist whatever their settings."""
    given = broker_url(url)

    async def go() -> T:
        async with App(given) as app:
            return await action(app)

    return run_reported(go())


def broker_url(url: str | None) -> str:
    """``url``, else ``$PIGEON_URL``; without either, exit 2 saying what to set."""
    url = url or os.environ.get("PIGEON_URL")
    if not url:
        typer.echo(
            "error: this command talks to a broker: give --url (e.g. --url "
            "nats://127.0.0.1:4222) or set PIGEON_URL; --url memory:// is an empty in-process "
            "broker of this command's own",
            err=True,
        )
        raise typer.Exit(EXIT_CONFIGURATION)
    return url


def run_reported(work: Awaitable[T]) -> T:
    async def main() -> T:
        return await work

    with reported():
        return asyncio.run(main())


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """A ``PigeonError`` as one ``error: …`` line and exit 1; a ``ConfigurationError`` exits 2:
    restarting cannot mend it, so the supervisor of ``--workers`` gives up."""
    try:
        yield
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIGURATION) from exc
    except PigeonError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def json_body(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}") from exc
