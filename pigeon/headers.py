"""Names of pigeon's own message headers, all in one place.

Every header pigeon adds starts with ``x-pigeon-``; anything else in a message's headers belongs to
the user or to another client and is carried through untouched.
"""

import re
from collections.abc import Mapping
from urllib.parse import unquote

from pigeon.errors import ConfigurationError

PREFIX = "x-pigeon-"

DEADLINE = "x-pigeon-deadline"
"""Request deadline, seconds since the epoch; a server drops a request received after it."""

ERROR_TYPE = "x-pigeon-error-type"
"""On an RPC reply: the remote exception's class name. On a dead letter: why it failed."""

ERROR_MESSAGE = "x-pigeon-error-message"
"""On an RPC reply or a dead letter: the exception's text."""

ERROR_CODE = "x-pigeon-error-code"
"""On an RPC error reply: ``400`` when the request failed decoding or validation, ``500`` when
the handler raised (the codes of the NATS services protocol, on every transport)."""

ATTEMPTS = "x-pigeon-attempts"
"""On a dead letter: how many times the handler was called for the message, in all."""

QUEUE = "x-pigeon-queue"
"""On a dead letter: the work queue the message failed on."""

FAILED_AT = "x-pigeon-failed-at"
"""On a dead letter: when it was dead-lettered, ISO 8601 in UTC."""

DELIVERY = "x-pigeon-delivery"
"""Delivery count carried across broker-side redeliveries where the broker does not count."""

DUE = "x-pigeon-due"
"""On a delayed job while it waits: when it falls due, seconds since the epoch; a transport that
hands a job over early (NATS without message schedules, RabbitMQ past its delay ladder) reads it
to hold the job back again."""

MESSAGE_ID = "x-pigeon-message-id"
"""The message id where the broker's own id header must be another key: NATS dead letters and
replays, whose ``Nats-Msg-Id`` is a fresh de-duplication key."""

RETURNS = "x-pigeon-returns"
"""Deliveries of earlier copies of a job that ended unsettled, counted by pigeon where the broker
does not (RabbitMQ classic queues)."""

PROTOBUF_TYPE = "x-pigeon-protobuf-type"
"""For ``application/x-protobuf`` bodies: the message's full name."""

SERVICE_ERROR = "Nats-Service-Error"
"""NATS services protocol, on an error reply: the error's text. pigeon writes it on NATS and
reads it from any NATS service's reply (nats.js ``respondError``, nats-py ``nats.micro``)."""

SERVICE_ERROR_CODE = "Nats-Service-Error-Code"
"""NATS services protocol, on an error reply: the error's code (400, 500, ...)."""

DELAY_QUEUE = "pigeon-delay-queue"
"""On a delayed job going down RabbitMQ's delay ladder: the work queue it goes to when due (no
``x-`` prefix: a headers exchange ignores ``x-`` arguments when matching)."""

SERVICE_ERROR_TYPE = "ServiceError"
"""``RemoteError.type`` of an error reply of the NATS services protocol (no type of its own)."""

FAILURE_HEADERS = (ERROR_TYPE, ERROR_MESSAGE, ATTEMPTS, QUEUE, FAILED_AT)

SENT_BY_PIGEON = frozenset({DEADLINE})
"""pigeon's own headers on a message its send middleware sees (besides ``USER_SETTABLE``)."""

USER_SETTABLE = frozenset({PROTOBUF_TYPE})
"""pigeon's own headers a caller may give, spelled exactly so: the protobuf type, with a body
already encoded as protobuf (``codec=PROTOBUF`` and ``bytes``)."""

RESERVED_PREFIXES: dict[str, str] = {
    PREFIX: "pigeon's own headers (deadlines, errors, delivery counts) start with 'x-pigeon-'",
    "nats-": "NATS reads headers starting with 'Nats-' as its own (JetStream drops a message "
    "whose Nats-Msg-Id it has seen; Nats-Expected-*, Nats-TTL, Nats-Rollup change what it stores)",
    "x-first-death-": "RabbitMQ writes x-first-death-* on dead-lettered messages",
    "x-last-death-": "RabbitMQ writes x-last-death-* on dead-lettered messages",
}
"""Header name prefixes (lower case) no caller may use, with why: pigeon's and the brokers'."""

RESERVED_NAMES: dict[str, str] = {
    "x-death": "RabbitMQ writes x-death on dead-lettered messages, and pigeon hides it",
    "x-delivery-count": "RabbitMQ counts deliveries in x-delivery-count (pigeon reads it)",
    "cc": "RabbitMQ routes a message to the routing keys CC names as well",
    "bcc": "RabbitMQ routes a message to the routing keys BCC names as well",
    DELAY_QUEUE: "pigeon's RabbitMQ delay ladder routes delayed jobs by it",
}
"""Header names (lower case) no caller may use, with why."""


_UNSAFE = re.compile(r"[%\x00-\x1f\x7f]|^\s+|\s+$")
"""What a header value cannot carry as it is on every transport (NATS trims values and turns
line breaks into spaces), and ``%``, the escape itself."""


def encode_text(text: str) -> str:
    """``text`` (an error message, say) as a header value every transport carries as it is:
    ``%``, control characters (line breaks) and leading or trailing whitespace percent-encoded
    (UTF-8), the rest unchanged, so that ``"only 3 left"`` stays ``"only 3 left"``."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text)


def decode_text(value: str) -> str:
    """The text ``encode_text`` encoded (a value without a valid escape is returned as it is)."""
    return unquote(value) if "%" in value else value


def error_type(headers: Mapping[str, str]) -> str | None:
    """The type of the error a reply's ``headers`` say it carries (pigeon's ``ERROR_TYPE``, or
    ``SERVICE_ERROR_TYPE`` for the NATS services protocol's), ``None`` for a plain reply."""
    if ERROR_TYPE in headers:
        return headers[ERROR_TYPE]
    if SERVICE_ERROR_CODE in headers or SERVICE_ERROR in headers:
        return SERVICE_ERROR_TYPE
    return None


def check_user_headers(headers: Mapping[str, str], known: frozenset[str] = frozenset()) -> None:
    """Raise ``ConfigurationError`` for the first name in ``headers`` (other than those in
    ``known``, pigeon's own on the message) that pigeon or a broker reads as its own
    (``RESERVED_PREFIXES``, ``RESERVED_NAMES``, in any case), except ``USER_SETTABLE``. A name
    that is no ``str`` is left to the transport's checks (``pigeon.transports.limits``)."""
    if _fine.issuperset(headers):  # the common case: names seen before, in one C loop
        return
    for name in headers:
        if name not in _fine and name not in known and type(name) is str:
            _check_name(name)


_fine: set[str] = set()
"""Header names ``_check_name`` let through (emptied at 1,024): the same few on every message."""


def _check_name(name: str) -> None:
    lowered = name.lower()
    why = RESERVED_NAMES.get(lowered)
    if why is None and lowered.startswith(_PREFIXES):
        why = next(w for p, w in RESERVED_PREFIXES.items() if lowered.startswith(p))
    if why is None or name in USER_SETTABLE:
        if len(_fine) >= 1024:
            _fine.clear()
        _fine.add(name)
        return
    exact = next((n for n in USER_SETTABLE if n == lowered), None)
    if exact is not None:
        todo = f"write it {exact!r} to name the type of a protobuf body"
    else:
        stem = lowered.removeprefix(PREFIX).removeprefix("nats-").removeprefix("x-")
        todo = f"rename it to a name of your own, e.g. 'x-app-{stem}'"
    raise ConfigurationError(f"header {name!r} is reserved on every transport ({why}); {todo}")


_PREFIXES = tuple(RESERVED_PREFIXES)
