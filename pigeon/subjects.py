"""Subjects: dot-separated tokens, with NATS wildcards ``*`` (one token) and ``>`` (the rest)."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from pigeon.errors import ConfigurationError

MAX_BYTES = 1024
"""The longest subject (UTF-8 bytes) pigeon sends. Brokers compose names from subjects (NATS
JetStream API subjects, stream and consumer names; RabbitMQ queue names), and a NATS server closes
the connection of a client whose control line (command, subject, reply subject, sizes) is over
its ``max_control_line`` (4096 bytes by default): a limit well below it keeps every composed name
under it. RabbitMQ's transport allows at most 255 (AMQP's limit on routing keys)."""

LADDER = "pigeon.delay."
"""The prefix of the queues and exchanges of RabbitMQ's delay ladder."""

DURABLES = "pigeon.durable."
"""The prefix of RabbitMQ's durable subscriptions' queues, ``pigeon.durable.<name>:<subject>``."""

RESERVED = (
    "_PIGEON.",
    "pigeon.queue.",
    "pigeon.dlq.",
    "pigeon.delayed.",
    DURABLES,
    LADDER,
    "_INBOX.",
    "$JS.",
    "$SYS.",
    "$KV.",
    "$O.",
    "$SRV.",
)
"""Prefixes no handler or send may use, on every transport: pigeon's own subjects (requests to
servers, on NATS work queues, dead letters and delayed jobs, on RabbitMQ the delay ladder's
exchanges and queues, ``pigeon.delay.<queue type>.<level>``) and NATS's (reply inboxes, the
JetStream, system, key-value, object store and service APIs). A subscription under one of them
received pigeon's jobs, requests or replies, or took requests from the servers; a work queue or
group under ``pigeon.durable.`` would name a durable subscription's queue on RabbitMQ."""


@lru_cache(maxsize=4096)
def validate(subject: str, *, wildcards: bool = False) -> str:
    """Return ``subject`` if well formed, else raise ``ConfigurationError`` saying what is wrong.

    Tokens must be non-empty and printable (no whitespace, control or format characters, see
    ``_refuse_unprintable``); ``*`` and ``>`` are allowed only where
    ``wildcards`` is true (subscriptions), ``>`` only as the last token; no ``#`` token
    (RabbitMQ's multi-word wildcard, a plain token elsewhere); at most ``MAX_BYTES``; never under
    a ``RESERVED`` prefix.
    """
    if not isinstance(subject, str) or not subject:
        raise ConfigurationError(f"subject {subject!r} is empty; use tokens like 'orders.created'")
    if not subject.isprintable():
        _refuse_unprintable(subject)
    check_length(subject)
    if subject.startswith(RESERVED):
        raise ConfigurationError(
            f"subject {subject!r} is under a prefix reserved for pigeon's and NATS's own "
            f"subjects ({', '.join(RESERVED)}); choose another first token"
        )
    tokens = subject.split(".")
    for index, token in enumerate(tokens):
        if not token:
            raise ConfigurationError(
                f"subject {subject!r} has an empty token; separate tokens with single dots"
            )
        if any(c.isspace() for c in token):
            raise ConfigurationError(f"subject {subject!r} contains whitespace; remove it")
        if token == "#":
            raise ConfigurationError(
                f"subject {subject!r} has a '#' token, RabbitMQ's multi-word wildcard; pigeon's "
                "is '>' (subscriptions only, as the last token): use '>' or another token"
            )
        if token in ("*", ">") or ("*" in token or ">" in token):
            if not wildcards:
                raise ConfigurationError(
                    f"subject {subject!r} has a wildcard; wildcards are for subscriptions only"
                )
            if token not in ("*", ">"):
                raise ConfigurationError(
                    f"subject {subject!r}: a wildcard must be a whole token ('orders.*')"
                )
            if token == ">" and index != len(tokens) - 1:
                raise ConfigurationError(f"subject {subject!r}: '>' must be the last token")
    return subject


QUEUE_SUFFIXES = (".dlq", ".delivery-limit")
"""Endings of the names of pigeon's own queues on RabbitMQ: ``<queue>.dlq`` holds the dead
letters of ``<queue>``, ``<queue>.delivery-limit`` records its delivery limit."""

AMQ = "amq."
"""The prefix of RabbitMQ's own queue names: it refuses to declare another queue under it."""


def validate_queue(queue: str, *, wildcards: bool = False) -> str:
    """Return ``queue`` if it can name a queue, else raise ``ConfigurationError``: a subject
    ``validate`` takes that does not end in one of ``QUEUE_SUFFIXES`` nor start with ``AMQ``.
    For the names of work queues and of rpc subjects (``wildcards`` for a server's), which name
    queues on RabbitMQ (a request to ``<queue>.dlq`` waited among the dead letters of
    ``<queue>``); refused on every transport, so that an App moves between them unchanged."""
    validate(queue, wildcards=wildcards)
    if queue.endswith(QUEUE_SUFFIXES):
        raise _pigeons_queue(queue, "queue")
    if queue.startswith(AMQ):
        raise _amq(queue, "queue")
    return queue


def _amq(name: str, what: str) -> ConfigurationError:
    return ConfigurationError(
        f"{what} {name!r} starts with {AMQ!r}, which RabbitMQ keeps for its own queues (it "
        "refuses to declare one); choose another first token"
    )


def _pigeons_queue(name: str, what: str) -> ConfigurationError:
    suffix = next(s for s in QUEUE_SUFFIXES if name.endswith(s))
    owner = name[: -len(suffix)]
    meant = ""
    if suffix == ".dlq" and what == "queue":
        meant = f"; to read the dead letters of {owner!r}, give {owner!r} itself"
    return ConfigurationError(
        f"{what} {name!r} ends in {suffix!r}, the ending of pigeon's own queues (on RabbitMQ "
        f"'<queue>{suffix}' belongs to the work queue '<queue>'){meant}; as a name of your "
        f"own, choose another, e.g. {owner + suffix.replace('.', '-')!r}"
    )


def _refuse_unprintable(subject: str) -> None:
    """``ConfigurationError`` naming the first character of ``subject`` that is not printable:
    whitespace, a control or format character (NUL, DEL, a zero-width space), a lone surrogate
    (which UTF-8 cannot encode) or an unassigned one. Brokers differ on them (one refuses, one
    maps them to ``_``, one takes them as they are): pigeon refuses them everywhere."""
    char = next(c for c in subject if not c.isprintable())
    if char.isspace():
        raise ConfigurationError(f"subject {subject!r} contains whitespace; remove it")
    raise ConfigurationError(
        f"subject {subject!r} contains a character that is not printable (U+{ord(char):04X}, "
        f"category {unicodedata.category(char)}); use letters, digits and punctuation"
    )


def check_name(name: str | None, what: str) -> None:
    """``ConfigurationError`` unless ``name`` (a subscription's ``group`` or ``durable``) is
    ``None`` or a non-empty string of printable characters (spaces allowed: each transport
    spells the name for its broker, see ``docs/wire.md``); a durable name, which names a queue on
    RabbitMQ, may not end in one of ``QUEUE_SUFFIXES`` nor start with ``LADDER``, ``DURABLES``
    or ``AMQ``."""
    if name is None:
        return
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{what}={name!r}: give a non-empty name, e.g. {what}='billing'")
    if not name.isprintable():
        raise ConfigurationError(
            f"{what}={name!r}: use letters, digits, punctuation and spaces, no characters that "
            "are not printable (tabs, line breaks, controls, zero-width ones)"
        )
    if what == "durable" and name.endswith(QUEUE_SUFFIXES):  # a queue's name, on RabbitMQ
        raise _pigeons_queue(name, "durable")
    if what == "durable" and name.startswith(AMQ):
        raise _amq(name, "durable")
    if what == "durable" and name.startswith(LADDER):
        raise ConfigurationError(
            f"durable={name!r} is under {LADDER!r}, the prefix of the queues of pigeon's delay "
            "ladder on RabbitMQ; choose another name"
        )
    if what == "durable" and name.startswith(DURABLES):
        raise ConfigurationError(
            f"durable={name!r} is under {DURABLES!r}, the prefix of the queues of durable "
            "subscriptions on RabbitMQ (the name would meet another subscription's queue); "
            "choose another name"
        )


def specificity(pattern: str) -> tuple[int, int]:
    """How broad ``pattern`` is, to sort the servers of a subject most specific first: an exact
    subject ``(0, 0)``, then patterns with ``*`` (more of them later), then those with ``>``:
    the order in which RabbitMQ's and Redis's transports pick one, and the memory broker's."""
    tokens = pattern.split(".")
    return (tokens[-1] == ">", tokens.count("*"))


def is_wildcard(subject: str) -> bool:
    """Whether ``subject`` has a ``*`` or ``>`` token."""
    tokens = subject.split(".")
    return "*" in tokens or ">" in tokens


def matches(pattern: str, subject: str) -> bool:
    """Whether ``subject`` (no wildcards) is matched by ``pattern`` (NATS semantics)."""
    if pattern == subject:
        return True
    pattern_tokens = pattern.split(".")
    subject_tokens = subject.split(".")
    for index, token in enumerate(pattern_tokens):
        if token == ">":
            return len(subject_tokens) > index
        if index >= len(subject_tokens):
            return False
        if token != "*" and token != subject_tokens[index]:
            return False
    return len(pattern_tokens) == len(subject_tokens)


def check_length(subject: str, limit: int = MAX_BYTES, where: str = "pigeon") -> None:
    """Raise ``ConfigurationError`` if ``subject`` is over ``limit`` UTF-8 bytes (``where``
    names whose limit it is)."""
    if len(subject) * 4 <= limit:  # no encoding needed: it cannot be over
        return
    size = len(subject.encode())
    if size > limit:
        raise ConfigurationError(
            f"subject {subject[:40]!r}... is {size} bytes, over the {limit} bytes {where} allows; "
            "use a shorter subject (carry data in the body or headers)"
        )
