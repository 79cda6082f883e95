"""Transports by URL scheme. A broker's package is imported only when its scheme is used."""

from __future__ import annotations

import importlib
from typing import Any

from pigeon.errors import ConfigurationError
from pigeon.transports.base import QueueSettings, Transport
from pigeon.transports.urls import mask_url

SCHEMES: dict[str, str] = {
    "memory": "pigeon.transports.memory:MemoryTransport",
    "nats": "pigeon.transports.nats:NatsTransport",
    "tls": "pigeon.transports.nats:NatsTransport",
    "amqp": "pigeon.transports.rabbitmq:RabbitMQTransport",
    "amqps": "pigeon.transports.rabbitmq:RabbitMQTransport",
    "redis": "pigeon.transports.redis:RedisTransport",
    "rediss": "pigeon.transports.redis:RedisTransport",
}
"""URL scheme -> ``module:class`` of the transport that serves it."""


def register_transport(scheme: str, target: str) -> None:
    """Serve ``scheme://`` URLs with the transport class ``target`` (``"module:Class"``),
    imported on first use. The class takes ``(url, settings: QueueSettings, options: dict)`` and
    satisfies ``pigeon.transports.base.Transport``; this is how a transport written outside
    pigeon plugs in (and runs ``pigeon.testing.conformance``). Raises ``ConfigurationError`` for a
    scheme that is not a plain lower-case word, or a target not of the form ``module:Class``."""
    module, _, name = target.partition(":")
    if not scheme.isalnum() or scheme != scheme.lower() or not module or not name:
        raise ConfigurationError(
            f"register_transport({scheme!r}, {target!r}): give a lower-case scheme such as "
            "'mybroker' and a target such as 'mypackage.transport:MyTransport'"
        )
    SCHEMES[scheme] = target


def transport_for(url: str, settings: QueueSettings, options: dict[str, Any]) -> Transport:
    """Build the transport for ``url``; ``ConfigurationError`` listing the supported schemes for
    an unknown one, or if the transport for a known one is not available."""
    scheme, sep, _ = url.partition("://")  # not urlsplit: it raises on a bad URL, unmasked
    scheme = scheme.lower() if sep else ""
    target = SCHEMES.get(scheme)
    if target is None:
        supported = ", ".join(f"{s}://" for s in SCHEMES)
        raise ConfigurationError(f"unsupported URL {mask_url(url)!r}; pigeon supports {supported}")
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"the {scheme}:// transport is not available in this install ({exc})"
        ) from exc
    transport: Transport = getattr(module, class_name)(url, settings, options)
    return transport
