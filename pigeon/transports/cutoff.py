"""The line that says a closing subscription cut off handlers still running after the shutdown
timeout: which handler, on which subject or queue, and what becomes of each message it held.

The pattern knows what runs (``Held``: a worker's job, a durable or group event, a plain event,
a request; an ``async def`` or a sync function in a thread); the transport knows where a cut-off
message goes (``groups_keep``: a group's events go back to the group's queue, as on memory and
RabbitMQ, or are gone, as on core NATS and Redis's ``NOACK`` groups).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("pigeon")

Kind = Literal["job", "durable", "group", "event", "request"]


@dataclass(frozen=True, slots=True)
class Held:
    """What a pattern's calls hold: ``label`` names the handler and its subject or queue
    (``worker render of queue 'invoices.render'``), ``kind`` what a call holds, ``in_thread``
    whether it is a sync function run in a worker thread."""

    label: str
    kind: Kind
    in_thread: bool = False


FATES: dict[Kind, str] = {
    "job": "their jobs go back to the queue unacked, to be delivered again",
    "durable": "their events stay with the durable subscription, to be delivered again",
    "group": "their events are dropped: the broker does not keep a group's events",
    "event": "their events are dropped: nothing keeps a plain subscription's events",
    "request": "their callers are answered ServerStopped",
}

KEPT_GROUP = (
    "their events go back to the group's queue, for another member (dropped with the queue "
    "if this was the last)"
)


def held_of(handler: Any) -> Held | None:
    """The ``Held`` of the pattern whose bound method ``handler`` is (directly, or in a
    ``functools.partial``), if it tells."""
    owner = getattr(handler, "__self__", None) or getattr(
        getattr(handler, "func", None), "__self__", None
    )
    held = getattr(owner, "held", None)
    return held() if callable(held) else None


def fate(held: Held, groups_keep: bool) -> str:
    """What becomes of the messages of ``held``'s calls that the shutdown timeout cut off."""
    if held.kind == "group" and groups_keep:
        return KEPT_GROUP
    return FATES[held.kind]


def log_cut_off(count: int, timeout: float, held: Held | None, groups_keep: bool = False) -> None:
    """Say that ``count`` calls of ``held``'s handler outlasted the shutdown timeout, and what
    becomes of them and their messages."""
    if held is not None and held.in_thread:
        log.warning(
            "pigeon: %s: %d call(s) still running after the shutdown timeout (%gs) go on in "
            "their threads: pigeon waits for them and keeps "
            "their messages meanwhile, settled as usual if the handler returns, handed back "
            "unsettled if it raises",
            held.label,
            count,
            timeout,
        )
        return
    label = "a handler" if held is None else held.label  # not a pattern's: what is known
    what = (
        "their messages go back to the broker unsettled"
        if held is None
        else fate(held, groups_keep)
    )
    log.warning(
        "pigeon: %s: %d call(s) still running after the shutdown timeout (%gs) were cancelled; "
        "%s, unless a handler caught the cancellation and returned (raise shutdown_timeout to "
        "let them end)",
        label,
        count,
        timeout,
        what,
    )
