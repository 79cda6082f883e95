"""The ``pigeon`` command: serve an App, send ad-hoc messages, inspect and replay dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from pigeon import arguments, delays, listening, running, subjects
from pigeon.app import App
from pigeon.codecs import shown
from pigeon.commands import broker_url, json_body, load_app, reported, run_reported, with_app
from pigeon.errors import ConfigurationError, PigeonError
from pigeon.message import Message
from pigeon.supervisor import EXIT_CONFIGURATION, Supervisor, log_format
from pigeon.transports.base import in_process

T = TypeVar("T")
log = logging.getLogger("pigeon")

cli = typer.Typer(help="pigeon: messaging patterns over NATS, RabbitMQ, Redis and memory.")
dlq = typer.Typer(help="Inspect, replay and purge a work queue's dead letters.")
cli.add_typer(dlq, name="dlq")

UrlOption = Annotated[str | None, typer.Option("--url", help="Broker URL; default: $PIGEON_URL")]
RunUrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Broker URL; default: $PIGEON_URL, else the App's own"),
]


def _port(text: str) -> Any:
    """A port option: 1 to 65535 (``arguments.port``)."""
    return typer.Option(callback=arguments.port, help=text)


@cli.command()
def run(
    target: Annotated[str, typer.Argument(help="The App to serve, as module:app")],
    url: RunUrlOption = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes, each its own App")] = 1,
    shutdown_timeout: Annotated[
        float | None,
        typer.Option(
            callback=arguments.seconds(0, "e.g. 10"),
            help="Seconds to let handlers in flight finish on SIGTERM (0 or more)",
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(callback=arguments.log_level, help="DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    ] = "INFO",
    metrics_port: Annotated[
        int | None, _port("Deprecated, use --http-port: Prometheus metrics here (worker i: +i)")
    ] = None,
    health_port: Annotated[
        int | None, _port("Deprecated, use --http-port: 200 when ready, else 503 (worker i: +i)")
    ] = None,
    http_port: Annotated[
        int | None, _port("Serve /healthz, /readyz, /metrics and /asyncapi here (worker i: +i)")
    ] = None,
    bind: Annotated[str, typer.Option(help="Address of the HTTP, metrics and health ports")] = (
        "0.0.0.0"
    ),
    tracing: Annotated[bool, typer.Option(help="OpenTelemetry spans and trace context")] = False,
    reload: Annotated[
        bool, typer.Option(help="Restart when a .py file under the current directory changes")
    ] = False,
    worker_index: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Serve an App until SIGINT or SIGTERM, then drain its handlers and exit 0."""
    ports = {"--http-port": http_port, "--health-port": health_port, "--metrics-port": metrics_port}
    for option, port in ports.items():
        arguments.last_port(option, port, workers)
    supervising = workers > 1 and not reload
    logging.basicConfig(level=log_level, format=log_format(worker_index, supervising))
    if url:
        os.environ["PIGEON_URL"] = url
    if reload:
        raise typer.Exit(running.reload(sys.argv, workers))
    if supervising:
        raise typer.Exit(_supervise(target, workers, shutdown_timeout))
    index = worker_index or 0
    app = _served_app(target, url, shutdown_timeout)
    if index == 0:  # once, not once per worker
        running.warn_deprecated(health_port, metrics_port)
        running.warn_about_url(app, url)
    with reported():
        running.observe(app, tracing, None if metrics_port is None else metrics_port + index, bind)
    run_reported(running.serve(app, running.Ports(http_port, health_port, bind).of_worker(index)))


def _supervise(target: str, workers: int, shutdown_timeout: float | None) -> int:
    """``--workers N``: run N worker processes of this command until SIGINT or SIGTERM."""
    load_app(target)  # a module that does not import fails here, once, not in every worker
    timeout = 10.0 if shutdown_timeout is None else shutdown_timeout
    return asyncio.run(Supervisor(running.worker_command(sys.argv), workers, timeout).run())


def _served_app(target: str, url: str | None, shutdown_timeout: float | None) -> App:
    """The App ``pigeon run`` serves: ``target``, on ``url`` if given (only for an ``App()``)."""
    app = load_app(target)
    if url and app.url != url:
        raise typer.BadParameter(
            f"{target} was built with a URL in its code; build it as App() to choose the URL "
            "with --url or PIGEON_URL"
        )
    if shutdown_timeout is not None:
        app.shutdown_timeout = shutdown_timeout
    return app


class _DocsGroup(TyperGroup):
    """``pigeon docs module:app`` (no subcommand) still runs ``pigeon docs export``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:  # typer vendors click's types
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["export", *args]
        return super().resolve_command(ctx, args)


docs = typer.Typer(cls=_DocsGroup, help="The AsyncAPI document of an App: export or serve it.")
cli.add_typer(docs, name="docs")
TitleOption = Annotated[str | None, typer.Option(help="Document title; default the target")]


@docs.command("export")
def docs_export(
    target: Annotated[str, typer.Argument(help="The App to document, as module:app")],
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="File to write; default stdout")
    ] = None,
    title: TitleOption = None,
    yaml: Annotated[bool, typer.Option("--yaml", help="YAML instead of JSON")] = False,
) -> None:
    """Write the AsyncAPI 3.0 document of an App (channels, operations, message schemas)."""
    from pigeon.asyncapi import asyncapi_document

    document = asyncapi_document(load_app(target), title=title or target)
    if yaml:
        import yaml as pyyaml

        text = pyyaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(document, indent=2) + "\n"
    if output:
        with open(output, "w", encoding="utf-8") as file:
            file.write(text)
    else:
        typer.echo(text, nl=False)


@docs.command("serve")
def docs_serve(
    target: Annotated[str, typer.Argument(help="The App to document, as module:app")],
    port: Annotated[int, typer.Option(callback=arguments.port, help="HTTP port")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    title: TitleOption = None,
) -> None:
    """Serve an App's AsyncAPI page (/asyncapi) and document, without connecting to its broker."""
    running.require("uvicorn", "pigeon docs serve", "http")
    import uvicorn

    from pigeon.asgi import docs_app

    application = docs_app(load_app(target), title=title or target)
    with reported():  # bound before the page is said to be there
        listener = listening.bind(host, port, "HTTP", "--port")
    typer.echo(f"pigeon: the AsyncAPI page of {target} is on http://{host}:{port}/asyncapi")
    server = uvicorn.Server(uvicorn.Config(application, host=host, port=port, log_level="warning"))
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn stopped, exit 0
        server.run(sockets=[listener])


@cli.command()
def publish(
    subject: str, body: Annotated[str, typer.Argument(help="JSON")], url: UrlOption = None
) -> None:
    """Publish one JSON event."""
    with_app(url, lambda app: app.publish(subject, json_body(body)))


@cli.command()
def request(
    subject: str,
    body: Annotated[str, typer.Argument(help="JSON")],
    url: UrlOption = None,
    timeout: Annotated[
        float,
        typer.Option(
            callback=arguments.seconds(0, "e.g. 5", low_allowed=False),
            help="Seconds to wait for the reply",
        ),
    ] = 5.0,
) -> None:
    """Send one JSON request and print the reply."""
    reply = with_app(url, lambda app: app.request(subject, json_body(body), timeout=timeout))
    typer.echo(shown(reply))


@cli.command()
def enqueue(
    queue: str,
    body: Annotated[str, typer.Argument(help="JSON")],
    url: UrlOption = None,
    delay: Annotated[
        float | None, typer.Option(callback=arguments.delay, help="Seconds to hold it back")
    ] = None,
    at: Annotated[str | None, typer.Option(help="When: ISO 8601, e.g. 2030-01-01T09:00Z")] = None,
) -> None:
    """Store one JSON job on a work queue, now or later (--delay or --at)."""
    job = json_body(body)
    try:  # bad input is refused before any broker is asked for
        due = delays.parse_time(at)
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc), param_hint="--at") from exc
    with_app(url, lambda app: app.enqueue(queue, job, delay=delay, at=due))


@dlq.command("ls")
def dlq_ls(queue: str, url: UrlOption = None) -> None:
    """Count a queue's dead letters."""
    letters = with_app(url, _if_known(queue, lambda app: app.dead_letters(queue)))
    typer.echo(f"{queue}: {_plural(len(letters), 'dead letter')}")


@dlq.command("show")
def dlq_show(
    queue: str,
    url: UrlOption = None,
    limit: Annotated[int, typer.Option(min=0, help="How many to show (0 or more)")] = 10,
) -> None:
    """Show dead letters: body preview, error, attempts and time."""
    for letter in with_app(url, _if_known(queue, lambda app: app.dead_letters(queue, limit))):
        typer.echo(describe(letter))


@dlq.command("replay")
def dlq_replay(
    queue: str,
    url: UrlOption = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="How many to replay (1 or more); default all")
    ] = None,
) -> None:
    """Move dead letters back onto their work queue."""
    from pigeon import status as view

    moved = with_app(url, _if_known(queue, lambda app: view.replay(app, queue, limit)))
    typer.echo(f"{queue}: replayed {_plural(moved, 'dead letter')}")


@dlq.command("purge")
def dlq_purge(
    queue: str,
    url: UrlOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete them")] = False,
) -> None:
    """Delete a queue's dead letters."""
    if not yes:
        raise typer.BadParameter("purging deletes the dead letters for good; add --yes")
    purged = with_app(url, _if_known(queue, lambda app: app.purge_dead_letters(queue)))
    typer.echo(f"{queue}: purged {_plural(purged, 'dead letter')}")


@cli.command()
def status(
    target: Annotated[str | None, typer.Argument(help="The App, as module:app")] = None,
    queue: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="A work queue (repeatable)")
    ] = None,
    url: UrlOption = None,
    watch: Annotated[
        bool, typer.Option(help="Redraw the table live until Ctrl-C or SIGTERM")
    ] = False,
    every: Annotated[
        float,
        typer.Option(callback=arguments.seconds(0.1, "e.g. 2"), help="Seconds between redraws"),
    ] = 2.0,
    window: Annotated[
        float,
        typer.Option(callback=arguments.seconds(0, "e.g. 1"), help="Seconds to measure rates over"),
    ] = 1.0,
) -> None:
    """Show the backlog of an App's work queues and durable subscriptions (or --queue): ready,
    unacked, dead letters, consumers, oldest age and ready/s; '?' where the broker cannot tell."""
    from pigeon import status as view

    if url and target:
        os.environ["PIGEON_URL"] = url  # for an App() built in the target's module
    try:
        app = load_app(target) if target else App(broker_url(url))
    except ConfigurationError as exc:  # a bad URL: as every other command says it
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIGURATION) from exc
    if url and app.url != url:
        raise typer.BadParameter(f"{target} was built with a URL in its code; drop --url")
    queues = [*(view.watched(app) if target else ()), *(queue or ())]
    if not queues:
        raise typer.BadParameter(
            "name a work queue with --queue, or an App that has workers or durable subscriptions"
        )
    try:
        raise typer.Exit(
            run_reported(view.run(app, queues, watch=watch, every=every, window=window))
        )
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def describe(letter: Message) -> str:
    """One dead letter as a line: id, failure, attempts, time and a body preview."""
    failure = letter.failure
    preview = letter.body[:120].decode(errors="replace")
    if failure is None:
        return f"{letter.message_id}  (no failure recorded)  {preview}"
    return (
        f"{letter.message_id}  {failure.type}: {failure.message}  "
        f"attempts={failure.attempts}  at={failure.failed_at.isoformat()}  body={preview}"
    )


def _if_known(queue: str, work: Callable[[App], Awaitable[T]]) -> Callable[[App], Awaitable[T]]:
    """``work``, after raising ``PigeonError`` for a queue the broker has neither as a work queue
    nor with dead letters (a misspelt name): every ``dlq`` command says so, not "0"."""

    async def checked(app: App) -> T:
        subjects.validate_queue(queue)  # a dead-letter queue's own name: say which to give
        if not await _exists(app, queue) and not await app.dead_letters(queue, 1):
            url = app.transport.url
            raise PigeonError(f"work queue {queue!r} does not exist on {url}{in_process(url)}")
        return await work(app)

    return checked


async def _exists(app: App, queue: str) -> bool:
    """Whether the work queue ``queue`` exists; ``True`` where the transport cannot tell."""
    exists = getattr(app.transport.jobs, "exists", None)
    return True if exists is None else bool(await exists(queue))


def _plural(count: int, noun: str) -> str:
    """``1 dead letter``, ``2 dead letters``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def main() -> None:
    """Entry point of the ``pigeon`` console script."""
    cli()
