"""The Redis transport (``redis://``, ``rediss://``): see ``transport.RedisTransport``."""

from pigeon.transports.redis.transport import RedisTransport

__all__ = ["RedisTransport"]
