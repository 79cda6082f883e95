"""The calls (sends, reads, admin calls) under way on a Redis transport, so that closing it ends
each one before its connections close: ``pigeon.transports.sends``, which RabbitMQ and NATS use
too, with a read as the default call. Only once they ended does the transport close its
connections: a command still waiting for one from the pool would otherwise open a new one,
which nothing ever closes.
"""

from __future__ import annotations

from pigeon.transports.sends import CUT_PATIENCE, READ, SEND, Send, Sends

__all__ = ["CUT_PATIENCE", "READ", "SEND", "Calls"]


class Calls(Sends):
    """``Sends`` whose calls are reads unless they say otherwise."""

    def __call__(self, action: str, unsure: str = READ) -> Send:
        """The call ``action`` ("reading the backlog of 'q'"), whose cut leaves its caller
        ``unsure`` of its effect (``READ``, the default; ``SEND``, ``REPLAY``, ...)."""
        return super().__call__(action, unsure)
