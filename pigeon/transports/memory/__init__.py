"""``memory://``: the embedded transport; see ``transport``."""

from pigeon.transports.memory.transport import MemoryTransport

__all__ = ["MemoryTransport"]
