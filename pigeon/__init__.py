"""pigeon: publish-subscribe, request-reply and work pools over NATS, RabbitMQ and memory."""

from pigeon.app import App
from pigeon.codecs import JSON, PROTOBUF, Codec, JSONCodec, ProtobufCodec
from pigeon.deduplicate import Deduplicate
from pigeon.dependencies import Depends
from pigeon.errors import (
    BrokerError,
    ConfigurationError,
    DeclarationConflict,
    DecodeError,
    EncodeError,
    MessageTooLarge,
    NoResponders,
    PigeonError,
    Reject,
    RemoteError,
    RequestError,
    RequestTimeout,
)
from pigeon.message import Envelope, Failure, Message
from pigeon.middleware import Timeout
from pigeon.retry import Redeliver, Retry
from pigeon.routing import Router
from pigeon.transports.base import Backlog

__all__ = [
    "JSON",
    "PROTOBUF",
    "App",
    "Backlog",
    "BrokerError",
    "Codec",
    "ConfigurationError",
    "DeclarationConflict",
    "DecodeError",
    "Deduplicate",
    "Depends",
    "EncodeError",
    "Envelope",
    "Failure",
    "JSONCodec",
    "Message",
    "MessageTooLarge",
    "NoResponders",
    "PigeonError",
    "ProtobufCodec",
    "Redeliver",
    "Reject",
    "RemoteError",
    "RequestError",
    "RequestTimeout",
    "Retry",
    "Router",
    "Timeout",
]
