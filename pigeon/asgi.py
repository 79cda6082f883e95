"""``App.asgi()``: one ASGI application for probes, metrics and the App's AsyncAPI document.

Routes, relative to where the application is mounted:

- ``GET /healthz``: liveness, 200 ``ok`` whenever the process and its event loop answer;
- ``GET /readyz``: readiness, 200 once every handler is subscribed and the broker is connected,
  else 503; the JSON body says which is not;
- ``GET /metrics``: Prometheus text, ``pigeon_events_dropped_total`` included (needs
  ``pigeon[prometheus]``, else 404 saying so);
- ``GET /asyncapi.json``, ``/asyncapi.yaml``: the AsyncAPI 3.0 document;
- ``GET /asyncapi``: an HTML page rendering the document with the AsyncAPI project's React
  component, served from pigeon's package data (no CDN: it works offline);
- ``/static/asyncapi/...``: that component's script, style sheet and licenses.

Built on Starlette (extra ``pigeon[http]``), so it mounts in FastAPI or Starlette:
``fastapi_app.mount("/pigeon", app.asgi())``.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pigeon import listening
from pigeon.asyncapi import asyncapi_document, kind_and_address, short_name
from pigeon.errors import ConfigurationError
from pigeon.transports.urls import mask_url

try:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.requests import Request
    from starlette.responses import (
        HTMLResponse,
        JSONResponse,
        PlainTextResponse,
        RedirectResponse,
        Response,
    )
    from starlette.routing import BaseRoute, Mount, Route
    from starlette.staticfiles import StaticFiles
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
    raise ConfigurationError(
        "App.asgi() and `pigeon docs serve` need the http extra: pip install 'pigeon[http]'"
    ) from exc

if TYPE_CHECKING:
    from pigeon.app import App
    from pigeon.patterns.serving import Startable

STATIC = Path(__file__).parent / "static"
PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:"
)
"""The page may load nothing from elsewhere: what renders under it renders offline."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: AsyncAPI</title>
<link rel="stylesheet" href="{root}/static/asyncapi/default.min.css">
</head>
<body>
<div id="asyncapi">Loading the AsyncAPI document of {title}...</div>
<script id="asyncapi-document" type="application/json">{document}</script>
<script src="{root}/static/asyncapi/index.js"></script>
<script>
  AsyncApiStandalone.render({{
    schema: JSON.parse(document.getElementById("asyncapi-document").textContent),
    config: {{ show: {{ sidebar: true }} }},
  }}, document.getElementById("asyncapi"));
</script>
</body>
</html>
"""


def asgi_app(app: App, *, title: str = "pigeon app") -> Starlette:
    """The ASGI application of ``app``: probes, metrics and AsyncAPI (see the module docstring).

    It serves; it does not start or stop ``app`` (``async with app`` or ``app.run()`` does, or a
    FastAPI lifespan). With ``prometheus_client`` installed and no ``PrometheusMetrics`` among
    ``app``'s middleware yet, one is added with ``app.use`` (so call this before the App starts;
    after, ``/metrics`` answers 404 saying so). Raises ``ConfigurationError`` without the ``http``
    extra.
    """
    metrics = _metrics(app)
    probes = _Probes(app)
    routes: list[BaseRoute] = [
        Route("/healthz", probes.alive, methods=["GET"]),
        Route("/readyz", probes.ready, methods=["GET"]),
        Route("/metrics", metrics.serve, methods=["GET"]),
        *asyncapi_routes(app, title),
    ]
    return Starlette(routes=routes, middleware=[Middleware(GZipMiddleware, minimum_size=1024)])


def docs_app(app: App, *, title: str = "pigeon app") -> Starlette:
    """An ASGI application serving only ``app``'s AsyncAPI page and document (``/`` redirects to
    the page); it never connects to the broker. ``pigeon docs serve`` runs it."""

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/asyncapi")

    routes = [Route("/", home, methods=["GET"]), *asyncapi_routes(app, title)]
    return Starlette(routes=routes, middleware=[Middleware(GZipMiddleware, minimum_size=1024)])


def asyncapi_routes(app: App, title: str) -> list[BaseRoute]:
    """The routes of the AsyncAPI document (JSON, YAML), its HTML page and the page's files."""

    def document() -> dict[str, Any]:  # built per request: handlers may be added until start
        return asyncapi_document(app, title=title)

    async def as_json(request: Request) -> Response:
        return JSONResponse(document())

    async def as_yaml(request: Request) -> Response:
        import yaml

        text = yaml.safe_dump(document(), sort_keys=False, allow_unicode=True)
        return PlainTextResponse(text, media_type="application/yaml")

    async def page(request: Request) -> Response:
        return HTMLResponse(
            render_page(document(), title, request.scope.get("root_path", "")),
            headers={"Content-Security-Policy": PAGE_POLICY},
        )

    return [
        Route("/asyncapi.json", as_json, methods=["GET"]),
        Route("/asyncapi.yaml", as_yaml, methods=["GET"]),
        Route("/asyncapi", page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def render_page(document: dict[str, Any], title: str, root: str) -> str:
    """The HTML page showing ``document``; ``root`` is the path the application is mounted at."""
    inline = json.dumps(document).replace("<", "\\u003c")  # no "</script>" inside the script
    return PAGE.format(title=html.escape(title), root=html.escape(root), document=inline)


class _Probes:
    """Liveness and readiness of one App."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def alive(self, request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def ready(self, request: Request) -> Response:
        report = readiness(self._app)
        return JSONResponse(report, status_code=200 if report["ready"] else 503)


def readiness(app: App) -> dict[str, Any]:
    """``{"ready": bool, "broker": {"url", "connected"}, "handlers": [...]}``: each handler with
    its ``pattern``, ``address``, ``name`` and whether it is ``subscribed`` (at the broker: not
    while disconnected); the URL is masked."""
    connected = app.transport.connected
    # App.start subscribes every handler, or closes them all when one fails: ready means all;
    # while the connection is down, none is subscribed at the broker
    handlers = [_handler_state(handler, app.ready and connected) for handler in app.handlers]
    return {
        "ready": app.ready and connected,
        "broker": {"url": mask_url(app.url), "connected": connected},
        "handlers": handlers,
    }


def _handler_state(handler: Startable, subscribed: bool) -> dict[str, Any]:
    pattern, address = kind_and_address(handler)
    return {
        "pattern": pattern,
        "address": address,
        "name": short_name(handler.handler),
        "subscribed": subscribed,
    }


NO_PROMETHEUS = "metrics need the prometheus extra: pip install 'pigeon[prometheus]'\n"
TOO_LATE = (
    "no metrics: app.asgi() was called after the App started, when no middleware can be added; "
    "call it before starting the App, or add pigeon.metrics.PrometheusMetrics with app.use()\n"
)


class _Metrics:
    """``/metrics`` from the App's ``PrometheusMetrics`` (``refresh``, awaited first, reads
    the backlog), or a 404 saying what to do."""

    def __init__(
        self,
        registry: Any,
        missing: str = NO_PROMETHEUS,
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._registry = registry
        self._missing = missing
        self._refresh = refresh

    async def serve(self, request: Request) -> Response:
        if self._registry is None:
            return PlainTextResponse(self._missing, status_code=404)
        if self._refresh is not None:
            await self._refresh()
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self._registry), media_type=CONTENT_TYPE_LATEST)


def _metrics(app: App) -> _Metrics:
    try:
        from pigeon.metrics import PrometheusMetrics
    except ConfigurationError:
        return _Metrics(None)
    from pigeon.running import backlog_interval
    from pigeon.sampling import ScrapeSampler

    metrics = next((m for m in app.middleware if isinstance(m, PrometheusMetrics)), None)
    if metrics is None:
        metrics = PrometheusMetrics()
        try:
            app.use(metrics)
        except ConfigurationError:  # the App runs: its handlers' middleware is fixed
            return _Metrics(None, TOO_LATE)
    metrics.count_drops(app)
    return _Metrics(metrics.registry, refresh=ScrapeSampler(app, metrics, backlog_interval()))


@asynccontextmanager
async def serving(
    application: Starlette, host: str, port: int, option: str = "--http-port"
) -> AsyncIterator[None]:
    """Serve ``application`` over HTTP with uvicorn on ``host:port``, in this event loop, while
    the block runs; on leaving, stop taking connections and finish the requests in flight.

    Raises ``ConfigurationError`` when the port cannot be bound (in use, no permission; the
    error says to choose another ``option``) or uvicorn is not installed (``pigeon[http]``).
    Signals are left to the caller (``App.run``).
    """
    try:
        import uvicorn
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "serving HTTP needs the http extra: pip install 'pigeon[http]'"
        ) from exc
    listener = listening.bind(host, port, "HTTP", option)

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # App.run handles SIGINT/SIGTERM: it drains, then the block ends and stops us

    config = uvicorn.Config(
        application, host=host, port=port, lifespan="off", log_config=None, access_log=False
    )
    server = Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        yield
    finally:
        server.should_exit = True
        await task
        listener.close()
