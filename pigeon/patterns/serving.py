"""A registered route as the pattern object that serves it: a ``pubsub.Subscriber``, an
``rpc.Responder`` or a ``workpool.Worker``, built once, when the handler is added."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pigeon.codecs import Codec
from pigeon.handlers import HandlerSpec
from pigeon.patterns import pubsub, rpc, workpool

if TYPE_CHECKING:
    from pigeon.routing import Route

Startable = pubsub.Subscriber | rpc.Responder | workpool.Worker


def serving(route: Route, spec: HandlerSpec, codec: Codec | None, delivery_limit: int) -> Startable:
    """What serves ``route`` with the handler ``spec``: ``codec`` encodes an rpc handler's replies
    unless the route names its own; ``delivery_limit`` is the App's."""
    opts, subject, middleware = route.options, route.subject, route.middleware
    if route.kind == "subscribe":
        return pubsub.Subscriber(
            subject,
            spec,
            opts["group"],
            opts["durable"],
            opts["concurrency"],
            delivery_limit,
            middleware=middleware,
            max_pending=opts["max_pending"],
        )
    if route.kind == "rpc":
        reply_codec = opts["codec"] or codec
        return rpc.Responder(subject, spec, reply_codec, opts["concurrency"], middleware)
    return workpool.Worker(
        subject,
        spec,
        opts["concurrency"],
        opts["retry"],
        opts["redeliver"],
        opts["dead_letter"],
        delivery_limit,
        middleware=middleware,
    )
