"""How ``pigeon run`` serves an App: observers, HTTP and health ports, ``--reload`` and the
worker processes of ``--workers``. The commands themselves are in ``pigeon.cli``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import math
import os
import shlex
import signal
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

from pigeon import listening
from pigeon.app import App
from pigeon.errors import ConfigurationError
from pigeon.health import serve_health
from pigeon.sampling import sample_backlog
from pigeon.status import watched
from pigeon.transports.urls import mask_url

if TYPE_CHECKING:
    from pigeon.metrics import PrometheusMetrics

log = logging.getLogger("pigeon")

BACKLOG_EVERY = 15.0
"""Default seconds between two readings of the backlog gauges (``PIGEON_BACKLOG_INTERVAL``; 0:
never). Each reading costs every work queue a few broker calls (``docs/backlog.md``)."""


def observe(app: App, tracing: bool, metrics_port: int | None, bind: str) -> None:
    """``pigeon run --tracing`` and ``--metrics-port``: add the middleware unless the App's
    module added one of its own (then that one is used: a second would trace or count each call
    twice)."""
    if tracing:
        require("opentelemetry.sdk", "--tracing", "otel")
        _trace(app)
    if metrics_port is not None:
        require("prometheus_client", "--metrics-port", "prometheus")
        _serve_metrics(app, metrics_port, bind)


def _trace(app: App) -> None:
    from opentelemetry import trace

    from pigeon.tracing import OpenTelemetryTracing

    if any(isinstance(m, OpenTelemetryTracing) for m in app.middleware):
        log.info("pigeon: --tracing: %r has an OpenTelemetryTracing already; using that", app)
        return
    app.observe(OpenTelemetryTracing())
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        log.warning(
            "pigeon: --tracing, but no OpenTelemetry tracer provider is set up, so no span "
            "is recorded; set one up with an exporter where the App's module is imported "
            "(trace.set_tracer_provider), or run under opentelemetry-instrument"
        )


def _serve_metrics(app: App, port: int, bind: str) -> None:
    from pigeon.metrics import PrometheusMetrics

    metrics = _prometheus(app)
    if metrics is None:
        metrics = PrometheusMetrics()
        app.observe(metrics)
    try:
        metrics.serve(port, bind)
    except (OSError, OverflowError) as exc:
        raise listening.cannot_serve("metrics", bind, port, "--metrics-port", exc) from exc


def exit_at_once(signum: int) -> None:
    """A second SIGINT or SIGTERM while closing (a cold shutdown, as Celery's): exit now with
    ``128 + signum``, without waiting for handlers (a sync handler's thread cannot be stopped
    otherwise). Unacked jobs go back to the broker when the connection drops."""
    log.warning(
        "pigeon: second %s: exiting at once; jobs in flight go back to the broker",
        signal.Signals(signum).name,
    )
    logging.shutdown()  # flush the log before the process ends
    os._exit(128 + signum)


async def run_until_stopped(app: App, stop: asyncio.Event) -> None:
    """``App.run()``: start ``app`` and serve until ``stop`` is set (the first SIGINT or SIGTERM
    sets it), then close gracefully; from then on a second signal exits at once. A stop while
    starting cancels the start (a lifespan hanging before its ``yield``, a broker slow to
    answer): what was entered is left and this returns."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, app.stop)
    try:
        if not await _start_unless_stopped(app, stop):
            log.info("pigeon: %r stopped while starting", app)
            return
        try:
            log.info("pigeon: %r serving %d handlers (pid %d)", app, len(app.handlers), os.getpid())
            await stop.wait()
            _exit_at_once_on(signals)
            log.info(
                "pigeon: stopping, draining handlers for up to %gs "
                "(SIGINT or SIGTERM now exits at once)",
                app.shutdown_timeout,
            )
        finally:
            await app.close()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _start_unless_stopped(app: App, stop: asyncio.Event) -> bool:
    """``app.start()``; ``False`` if ``stop`` came first: the start is then cancelled (what it
    entered is left, the transport closed), and a second signal exits at once meanwhile."""
    starting = asyncio.ensure_future(app.start())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        starting.cancel()
        raise
    finally:
        stopped.cancel()
    if starting.done():
        starting.result()  # raises what the start raised
        return True
    _exit_at_once_on((signal.SIGINT, signal.SIGTERM))
    starting.cancel()
    await asyncio.wait({starting})
    error = None if starting.cancelled() else starting.exception()
    if error is not None:
        raise error
    await app.close()  # in case the start ended despite the cancel (a lifespan swallowed it)
    return False


def _exit_at_once_on(signals: tuple[signal.Signals, ...]) -> None:
    loop = asyncio.get_running_loop()
    for sig in signals:
        loop.add_signal_handler(sig, exit_at_once, sig)


def require(module: str, what: str, extra: str) -> None:
    """Exit 2 with what to install when ``what`` needs ``module`` and it is missing."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        found = False
    if not found:
        typer.echo(
            f"error: {what} needs the {extra} extra: pip install 'pigeon[{extra}]'", err=True
        )
        raise typer.Exit(2)


@dataclass(frozen=True)
class Ports:
    """Where ``pigeon run`` listens: the ASGI app, and the deprecated raw health port."""

    http: int | None
    health: int | None
    bind: str

    def of_worker(self, index: int) -> Ports:
        """Worker ``index`` of ``--workers`` listens on each port + ``index``."""
        http = None if self.http is None else self.http + index
        health = None if self.health is None else self.health + index
        return Ports(http, health, self.bind)


async def serve(app: App, ports: Ports) -> None:
    every = backlog_interval()
    async with AsyncExitStack() as stack:
        if ports.http is not None:
            from pigeon.asgi import serving

            await stack.enter_async_context(serving(app.asgi(), ports.bind, ports.http))
        if ports.health is not None:
            server = await serve_health(
                lambda: app.ready and app.transport.connected, ports.health, ports.bind
            )
            stack.callback(server.close)
        metrics = _prometheus(app)
        if metrics is not None:
            metrics.count_drops(app)
        if metrics is not None and every > 0 and watched(app):
            sampler = asyncio.create_task(sample_backlog(app, metrics, every))
            stack.push_async_callback(_cancel, sampler)
        await app.run()


def backlog_interval() -> float:
    """Seconds between backlog readings: ``PIGEON_BACKLOG_INTERVAL``, else ``BACKLOG_EVERY``;
    0 for none. ``ConfigurationError`` unless it is a finite number, 0 or more."""
    text = os.environ.get("PIGEON_BACKLOG_INTERVAL", "")
    try:
        every = float(text) if text else BACKLOG_EVERY
    except ValueError:
        every = math.nan
    if not (math.isfinite(every) and every >= 0):
        raise ConfigurationError(
            f"PIGEON_BACKLOG_INTERVAL={text!r}: give the seconds between backlog readings "
            "(a number such as 15), or 0 for none"
        )
    return every


def _prometheus(app: App) -> PrometheusMetrics | None:
    """The App's ``PrometheusMetrics`` middleware, if it has one."""
    if importlib.util.find_spec("prometheus_client") is None:
        return None
    from pigeon.metrics import PrometheusMetrics

    return next((m for m in app.middleware if isinstance(m, PrometheusMetrics)), None)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def warn_deprecated(health_port: int | None, metrics_port: int | None) -> None:
    for option, given in (("--health-port", health_port), ("--metrics-port", metrics_port)):
        if given is not None:
            log.warning(
                "pigeon: %s is deprecated and will be removed: use --http-port, one port that "
                "serves /readyz, /healthz, /metrics and /asyncapi",
                option,
            )


def warn_about_url(app: App, url: str | None) -> None:
    """Log a warning when the App ``pigeon run`` serves is not on the broker a deploy may think:
    the in-process memory transport (nothing outside the process reaches it; with ``--workers``
    each process has its own), or a URL in its code while ``PIGEON_URL`` names another."""
    wanted = url or os.environ.get("PIGEON_URL")
    if wanted and app.url != wanted:
        log.warning(
            "pigeon: %r was built with a URL in its code; PIGEON_URL (%s) is not used: build "
            "it as App() to choose the URL from the environment",
            app,
            mask_url(wanted),
        )
    if app.url.startswith("memory:"):
        log.warning(
            "pigeon: %r is the in-process memory transport: nothing outside this process reaches "
            "its handlers, and each --workers process has a broker of its own; give --url or set "
            "PIGEON_URL to serve a broker",
            app,
        )


def reload(argv: list[str], workers: int) -> int:
    """Run this command without ``--reload`` in a child process; restart it whenever a ``.py``
    file under the current directory changes, until SIGINT or SIGTERM."""
    if workers > 1:
        raise typer.BadParameter(
            "--reload restarts one process when a file changes and cannot run several: "
            "drop --workers while developing, or --reload in production"
        )
    require("watchfiles", "--reload", "http")
    from watchfiles import Change, PythonFilter, run_process

    def restarting(changes: set[tuple[Change, str]]) -> None:
        names = sorted(os.path.relpath(path) for _, path in changes)
        log.warning("pigeon: %s changed; restarting", ", ".join(names))

    command = [sys.executable, "-m", "pigeon", *_child_args(argv)]
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # inherited (`cmd &` in a script):
        signal.signal(signal.SIGINT, signal.default_int_handler)  # stop on it, as App.run does
    log.info("pigeon: --reload: watching the .py files under %s", os.getcwd())
    run_process(
        os.getcwd(),
        target=shlex.join(command),
        target_type="command",
        watch_filter=PythonFilter(),
        callback=restarting,
    )
    return 0


def _child_args(argv: list[str]) -> list[str]:
    """``argv``'s arguments without ``--workers N`` and ``--reload``: those are the parent's."""
    args = [a for a in argv[1:] if a not in ("--reload", "--no-reload")]
    while "--workers" in args:
        position = args.index("--workers")
        del args[position : position + 2]
    return [a for a in args if not a.startswith("--workers=")]


def worker_command(argv: list[str]) -> Callable[[int], list[str]]:
    """The argv of worker ``index``: this command, as one worker."""
    args = _child_args(argv)

    def command(index: int) -> list[str]:
        return [
            *(sys.executable, "-m", "pigeon", *args),
            *("--workers", "1", "--worker-index", str(index)),
        ]

    return command
