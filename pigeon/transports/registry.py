"""Transports by URL scheme. A broker's package is imported only when its scheme is used."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

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


def transport_for(url: str, settings: QueueSettings, options: dict[str, Any]) -> Transport:
    """Build the transport for ``url``; ``ConfigurationError`` listing the supported schemes for
    an unknown one, or if the transport for a known one is not available."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
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
