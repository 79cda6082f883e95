"""An AsyncAPI 3.0 document of an App: every subscribe, rpc and worker with its message schema."""

from __future__ import annotations

import re
import typing
from typing import Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter

from pigeon.app import App
from pigeon.codecs.decoding import split_union
from pigeon.codecs.protobuf import full_name
from pigeon.handlers import HandlerSpec, return_type
from pigeon.patterns.pubsub import Subscriber
from pigeon.patterns.rpc import Responder
from pigeon.patterns.workpool import Worker
from pigeon.transports.urls import mask_url

SCHEMA_REF = "#/components/schemas/{model}"
RAW_PAYLOADS: dict[Any, tuple[str, dict[str, Any]]] = {
    bytes: ("application/octet-stream", {"type": "string", "format": "binary"}),
    str: ("text/plain", {"type": "string"}),
}


def asyncapi_document(
    app: App, *, title: str = "pigeon app", version: str = "1.0.0"
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of ``app``'s handlers, as a JSON-ready dict.

    Each handler is a channel (its subject or queue) and a ``receive`` operation; an rpc handler's
    operation has a ``reply`` with the return type's schema. Pydantic types get their JSON Schema,
    protobuf classes their full name.
    """
    builder = _Builder()
    for handler in app.handlers:
        builder.add(handler)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": version,
            "description": f"Served on {mask_url(app.url)}",
        },
        "servers": {"default": _server(app.url)},
        "defaultContentType": "application/json",
        "channels": builder.channels,
        "operations": builder.operations,
        "components": {"messages": builder.messages, "schemas": builder.schemas},
    }


class _Builder:
    def __init__(self) -> None:
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}

    def add(self, handler: Subscriber | Responder | Worker) -> None:
        kind, address = kind_and_address(handler)
        channel_id = _identifier(f"{address}")
        message_refs = self._messages(handler.handler.body_type)
        self._channel(
            channel_id, address, f"{kind} handled by {short_name(handler.handler)}", message_refs
        )
        operation: dict[str, Any] = {
            "action": "receive",
            "summary": _summary(handler.handler),
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in message_refs],
        }
        if isinstance(handler, Responder):
            operation["reply"] = self._reply(channel_id, handler.handler)
        operation_id = _identifier(f"{kind}.{address}")
        if operation_id in self.operations:  # several handlers of one subject: one operation each
            operation_id = _identifier(f"{operation_id}.{short_name(handler.handler)}")
        self.operations[operation_id] = operation

    def _channel(self, channel_id: str, address: str, description: str, refs: list[str]) -> None:
        """Add the channel, or add a second handler's description and messages to it."""
        channel = self.channels.setdefault(
            channel_id, {"address": address, "description": "", "messages": {}}
        )
        channel["description"] = "; ".join(filter(None, (channel["description"], description)))
        channel["messages"].update({m: {"$ref": f"#/components/messages/{m}"} for m in refs})

    def _reply(self, channel_id: str, spec: HandlerSpec) -> dict[str, Any]:
        reply_id = f"{channel_id}.reply"
        message_refs = self._messages(return_type(spec))
        self.channels[reply_id] = {
            "address": None,
            "description": "the caller's reply address (its reply_to)",
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in message_refs},
        }
        return {
            "address": {"location": "$message.header#/reply_to"},
            "channel": {"$ref": f"#/channels/{reply_id}"},
            "messages": [{"$ref": f"#/channels/{reply_id}/messages/{m}"} for m in message_refs],
        }

    def _messages(self, body_type: Any) -> list[str]:
        protobuf_classes, json_types = split_union(body_type)
        names = [self._protobuf_message(c) for c in protobuf_classes]
        if json_types:
            target: Any = json_types[0] if len(json_types) == 1 else typing.Union[tuple(json_types)]  # noqa: UP007
            names.append(self._json_message(target))
        return names

    def _protobuf_message(self, message_class: type[Any]) -> str:
        name = full_name(message_class)
        self.messages[_identifier(name)] = {
            "name": name,
            "title": name,
            "contentType": "application/x-protobuf",
            "summary": f"Protobuf message {name}; its name travels in x-pigeon-protobuf-type",
            "payload": {"type": "string", "format": "binary", "description": f"protobuf {name}"},
        }
        return _identifier(name)

    def _json_message(self, body_type: Any) -> str:
        raw = RAW_PAYLOADS.get(body_type)
        if raw is not None:
            content_type, payload = raw
        else:
            content_type = "application/json"
            payload = TypeAdapter(body_type).json_schema(ref_template=SCHEMA_REF)
            self.schemas.update(payload.pop("$defs", {}))
        name = _identifier(getattr(body_type, "__name__", None) or str(body_type))
        self.messages[name] = {"name": name, "contentType": content_type, "payload": payload}
        return name


def kind_and_address(handler: Subscriber | Responder | Worker) -> tuple[str, str]:
    """``("subscribe" | "rpc" | "worker", its subject or queue)``."""
    if isinstance(handler, Subscriber):
        return "subscribe", handler.subject
    if isinstance(handler, Responder):
        return "rpc", handler.subject
    return "worker", handler.queue


def _summary(spec: HandlerSpec) -> str:
    doc = (spec.fn.__doc__ or "").strip().splitlines()
    return doc[0] if doc else short_name(spec)


def short_name(spec: HandlerSpec) -> str:
    """The handler function's own name, without the scopes it was defined in."""
    return spec.name.rsplit(".", 1)[-1]


def _server(url: str) -> dict[str, Any]:
    parts = urlsplit(url.split(",")[0])
    return {
        "host": parts.hostname or parts.netloc or "localhost",
        "protocol": parts.scheme or "memory",
    }


def _identifier(text: str) -> str:
    """A component/channel key: AsyncAPI allows letters, digits, ``.``, ``-`` and ``_``."""
    return re.sub(r"[^\w.\-]", "_", text.replace("*", "star").replace(">", "rest"))
