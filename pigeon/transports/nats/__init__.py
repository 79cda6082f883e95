"""``nats://``: core NATS and JetStream through nats-py; see ``transport``."""

from pigeon.transports.nats.transport import NatsTransport

__all__ = ["NatsTransport"]
