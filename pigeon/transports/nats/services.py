"""An App's rpc handlers as a NATS service: ``App(url, service="inventory", version="1.2.0")``.

nats-py's ``nats.micro.Service`` answers the discovery protocol (``$SRV.PING``, ``$SRV.INFO``,
``$SRV.STATS``, each also per service name and per instance id), so ``nats micro ls`` / ``info`` /
``stats`` list the App with one endpoint per rpc subject. The requests themselves stay on pigeon's
own subscriptions (queue group ``pigeon-rpc``, bounded concurrency, graceful close): a
``nats.micro`` endpoint handles one request at a time and counts an error only when its handler
raises, so pigeon counts requests, errors and processing time itself and reports them through the
service's ``info()`` and ``stats()``.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from dataclasses import dataclass

from nats import errors as nats_errors
from nats.aio.client import Client
from nats.micro.service import (
    EndpointInfo,
    EndpointStats,
    Service,
    ServiceConfig,
    ServiceInfo,
    ServiceStats,
)

from pigeon import headers as h
from pigeon.errors import ConfigurationError
from pigeon.message import Envelope
from pigeon.transports.base import Delivery, Handler
from pigeon.transports.nats.names import name_token

_SERVING: contextvars.ContextVar[Endpoint | None] = contextvars.ContextVar(
    "pigeon_nats_endpoint", default=None
)
"""The endpoint whose request the current task is answering: ``reply`` counts its errors."""


def service_config(name: str, version: str | None) -> ServiceConfig:
    """The ``nats.micro`` configuration of a service; ``ConfigurationError`` for a name or
    version the protocol does not accept."""
    try:
        return ServiceConfig(name=name, version=version or "0.0.0")
    except ValueError as exc:
        raise ConfigurationError(
            f"service={name!r}, version={version!r}: {exc} (a service name is letters, digits, "
            "'-' and '_'; a version is semantic, like '1.2.0')"
        ) from None


@dataclass(slots=True)
class Endpoint:
    """One rpc subject of the service and what it has served."""

    subject: str
    queue_group: str
    requests: int = 0
    errors: int = 0
    processing_ns: int = 0
    last_error: str = ""

    @property
    def name(self) -> str:
        return name_token(self.subject)

    def counted(self, handler: Handler) -> Handler:
        """``handler``, counting each request and the time it took."""

        async def handle(delivery: Delivery) -> None:
            started = time.perf_counter_ns()
            self.requests += 1
            token = _SERVING.set(self)
            try:
                await handler(delivery)
            finally:
                _SERVING.reset(token)
                self.processing_ns += time.perf_counter_ns() - started

        return handle

    def info(self) -> EndpointInfo:
        return EndpointInfo(self.name, self.subject, self.queue_group, {"pigeon": "rpc"})

    def stats(self) -> EndpointStats:
        average = self.processing_ns // self.requests if self.requests else 0
        return EndpointStats(
            name=self.name,
            subject=self.subject,
            queue_group=self.queue_group,
            num_requests=self.requests,
            num_errors=self.errors,
            processing_time=self.processing_ns,
            average_processing_time=average,
            last_error=self.last_error,
        )


def count_reply(envelope: Envelope) -> None:
    """Count ``envelope`` as an error of the endpoint being served, if it is an error reply."""
    endpoint = _SERVING.get()
    if endpoint is not None and h.ERROR_CODE in envelope.headers:
        endpoint.errors += 1
        endpoint.last_error = h.decode_text(envelope.headers.get(h.ERROR_MESSAGE, ""))


class PigeonService(Service):
    """A ``nats.micro`` service whose endpoints are pigeon's rpc subscriptions."""

    def __init__(self, client: Client, config: ServiceConfig) -> None:
        super().__init__(client, config)
        self.endpoints: list[Endpoint] = []

    def info(self) -> ServiceInfo:
        info = super().info()
        info.endpoints = [endpoint.info() for endpoint in self.endpoints]
        return info

    def stats(self) -> ServiceStats:
        stats = super().stats()
        stats.endpoints = [endpoint.stats() for endpoint in self.endpoints]
        return stats


class Services:
    """The NATS service of one transport connection, started with its first rpc handler."""

    def __init__(self, config: ServiceConfig) -> None:
        self._config = config
        self._service: PigeonService | None = None

    async def add(
        self, client: Client, subject: str, queue_group: str, handler: Handler
    ) -> Handler:
        """Make ``subject`` an endpoint of the service; return ``handler``, counted."""
        service = self._service
        if service is None:
            service = self._service = PigeonService(client, self._config)
            await service.start()
        endpoint = Endpoint(subject, queue_group)
        service.endpoints.append(endpoint)
        return endpoint.counted(handler)

    async def move_to(self, client: Client) -> None:
        """The client closed for good and ``client`` took its place: answer discovery there,
        with the same endpoints and counts."""
        old = self._service
        if old is None:
            return
        service = self._service = PigeonService(client, self._config)
        service.endpoints = old.endpoints
        await service.start()

    async def stop(self) -> None:
        """Stop answering discovery; the next ``add`` starts a new service instance."""
        service, self._service = self._service, None
        if service is not None:
            with contextlib.suppress(nats_errors.Error, TimeoutError):
                await service.stop()
