"""The streams and consumers pigeon declares on JetStream: their names, settings and conflicts.

Every declaration is idempotent: declaring what exists with the same settings is a no-op, and with
other settings raises ``DeclarationConflict`` naming the setting that differs and how to resolve it.
Settings come from the App (``delivery_limit``, ``replicas``), never from one handler, so producers
and workers declare a queue alike; a consumer a producer made is marked so that the first worker
sets its settings (``MADE_BY_PRODUCER``). With ``App(passive=True)`` nothing is created: each
stream and consumer is looked up and used as it is, and one that is missing is a
``ConfigurationError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pigeon.errors import BrokerError, ConfigurationError, DeclarationConflict, PigeonError
from pigeon.transports.nats.errors import (
    CONSUMER_EXISTS,
    CONSUMER_NAME_EXISTS,
    CONSUMER_NOT_FOUND,
    NO_PEERS_FOR_PLACEMENT,
    STREAM_NAME_IN_USE,
    STREAM_NOT_FOUND,
    SUBJECTS_OVERLAP,
    JetStreamError,
)
from pigeon.transports.nats.jetstream import JetStreamApi
from pigeon.transports.nats.names import MAX_NAME_BYTES, consumer_name, event_stream, queue_token

ACK_WAIT = 5.0
"""Default seconds JetStream waits for an ack before delivering again (``App(ack_wait=...)``);
handlers in progress keep extending it."""

WORKERS = "workers"
"""The durable pull consumer of a work queue, shared by every worker of every App."""

MOVERS = "movers"
"""The durable pull consumer of a queue's delayed jobs: every worker of the queue moves jobs that
fell due onto the work queue, and naks the others with the time they have left."""

MADE_BY_PRODUCER = "pigeon: made by a producer; the first worker sets its settings"
"""The ``description`` of a work queue's consumer that a producer created (enqueueing before any
worker ran): the first worker updates it to its own settings (``ack_wait``, ``delivery_limit``),
which clears the mark; later workers must agree with those."""

QUEUE_SUBJECTS = "pigeon.queue."
DEAD_LETTER_SUBJECTS = "pigeon.dlq."
DELAYED_SUBJECTS = "pigeon.delayed."
_NS = 1_000_000_000
_QUEUE_ROOM = MAX_NAME_BYTES - len("PIGEON_Q_" + "_DELAYED")
"""Bytes left for a queue's token in the longest of its stream names."""


@dataclass(frozen=True, slots=True)
class QueueNames:
    """Where the work queue ``queue`` lives: its stream and subject, its dead letters', and its
    delayed jobs' (``PIGEON_Q_<queue>_DELAYED``, waiting there until due). ``<queue>`` is the
    queue's ``names.queue_token``."""

    queue: str
    stream: str
    subject: str
    dead_stream: str
    dead_subject: str
    delay_stream: str
    delay_subject: str

    @classmethod
    def of(cls, queue: str) -> QueueNames:
        token = queue_token(queue, _QUEUE_ROOM)
        return cls(
            queue,
            f"PIGEON_Q_{token}",
            QUEUE_SUBJECTS + queue,
            f"PIGEON_DLQ_{token}",
            DEAD_LETTER_SUBJECTS + queue,
            f"PIGEON_Q_{token}_DELAYED",
            DELAYED_SUBJECTS + queue,
        )


def covers(pattern: str, subject: str) -> bool:
    """Whether ``pattern`` matches every subject that ``subject`` (wildcards allowed) matches."""
    pattern_tokens, subject_tokens = pattern.split("."), subject.split(".")
    for index, token in enumerate(pattern_tokens):
        if token == ">":
            return len(subject_tokens) > index
        if index >= len(subject_tokens) or subject_tokens[index] == ">":
            return False
        if token not in ("*", subject_tokens[index]):
            return False
    return len(pattern_tokens) == len(subject_tokens)


class Declarer:
    """Declares the JetStream objects of one App, with its ``delivery_limit`` and ``replicas``."""

    def __init__(
        self,
        api: JetStreamApi,
        *,
        delivery_limit: int,
        replicas: int,
        ack_wait: float,
        ack_wait_given: bool = True,
        passive: bool = False,
    ) -> None:
        self._api = api
        self._took_over: list[tuple[str, dict[str, Any]]] = []  # see check_taken_over
        self._ack_wait_given = ack_wait_given
        self._passive = passive
        self._max_deliver = delivery_limit + 1
        self._replicas = replicas
        self._ack_wait = int(ack_wait * _NS)

    async def queue(self, names: QueueNames, *, strict: bool = True) -> None:
        """The work-queue stream, its shared consumer, and its dead-letter stream. Not ``strict``
        (a producer): what exists is used with the settings it has."""
        stream = self._stream_config(names.stream, names.subject, "workqueue")
        await self.stream(stream, strict=strict)
        await self.consumer(
            names.stream,
            {
                "durable_name": WORKERS,
                "ack_policy": "explicit",
                "ack_wait": self._ack_wait,
                "max_deliver": self._max_deliver,
                "filter_subject": names.subject,
                "deliver_policy": "all",
            },
            strict=strict,
        )
        dead = self._stream_config(names.dead_stream, names.dead_subject, "limits")
        await self.stream(dead, strict=strict)

    async def delays(self, names: QueueNames, *, strict: bool = True) -> None:
        """The stream of ``names``'s delayed jobs and its consumer ``MOVERS``, which redelivers
        without limit (each nak is a delivery) and holds any number of jobs waiting."""
        stream = self._stream_config(names.delay_stream, names.delay_subject, "workqueue")
        await self.stream(stream, strict=strict)
        await self.consumer(
            names.delay_stream,
            {
                "durable_name": MOVERS,
                "ack_policy": "explicit",
                "ack_wait": self._ack_wait,
                "max_deliver": -1,
                "max_ack_pending": -1,
                "filter_subject": names.delay_subject,
                "deliver_policy": "all",
            },
            strict=strict,
        )

    async def events(self, subject: str, durable: str) -> tuple[str, str]:
        """A stream that keeps events on ``subject`` and the durable consumer ``durable`` of it.

        A stream that already stores every such subject (one of pigeon's, or the user's own) is
        used; else pigeon makes one that keeps events until every durable subscriber has them.
        Returns ``(stream, consumer)``.
        """
        stream = await self._stream_covering(subject)
        if stream is None:
            stream = event_stream(subject)
            await self.stream(self._stream_config(stream, subject, "interest"))
        consumer = consumer_name(durable)
        await self.consumer(
            stream,
            {
                "durable_name": consumer,
                "ack_policy": "explicit",
                "ack_wait": self._ack_wait,
                "max_deliver": self._max_deliver,
                "filter_subject": subject,
                "deliver_policy": "new",
            },
        )
        return stream, consumer

    async def stream(self, config: dict[str, Any], *, strict: bool = True) -> None:
        """Create the stream ``config['name']``, or check that it exists with ``config`` (not
        ``strict``: that it stores the same subjects, whatever its other settings)."""
        name = config["name"]
        if self._passive:
            await self._expect(f"STREAM.INFO.{name}", f"stream {name!r}", STREAM_NOT_FOUND)
            return
        try:
            await self._api.call(f"STREAM.CREATE.{name}", config)
        except JetStreamError as exc:
            if exc.err_code == STREAM_NAME_IN_USE:
                info = await self._api.call(f"STREAM.INFO.{name}")
                what, remove = f"stream {name!r}", f"nats stream rm {name}"
                if strict or _names_differ(info["config"], config):
                    raise _conflict(what, remove, info["config"], config) from None
                return
            if exc.err_code == SUBJECTS_OVERLAP:
                raise DeclarationConflict(
                    f"cannot create stream {name!r} for {config['subjects']}: the subjects overlap "
                    "those of another stream. Durable subscriptions and work queues whose "
                    "subjects overlap cannot have streams of their own: use one subject "
                    "pattern for them, or make one stream that stores them all"
                ) from None
            raise _cannot(f"stream {name!r}", exc) from None

    async def consumer(self, stream: str, config: dict[str, Any], *, strict: bool = True) -> None:
        """Create the durable consumer ``config['durable_name']`` of ``stream``, or check it
        (not ``strict``: only its subject). Not ``strict`` (a producer), one it creates is
        marked ``MADE_BY_PRODUCER``; ``strict`` (a worker), one so marked takes its settings.

        An existing consumer is read first: a server before 2.10 ignores the create action and
        updates a consumer it is asked to create, so creating over it would change a queue's
        settings silently (a second worker's delivery limit, a producer's ack wait)."""
        name = config["durable_name"]
        if self._passive:
            what = f"consumer {name!r} of stream {stream!r}"
            await self._expect(f"CONSUMER.INFO.{stream}.{name}", what, CONSUMER_NOT_FOUND)
            return
        if not strict:  # a producer's settings: the first worker's replace them
            config = {**config, "description": MADE_BY_PRODUCER}
        if await self._check_consumer(stream, config, strict=strict):
            return
        try:
            await self._create_consumer(stream, config, "create")
        except JetStreamError as exc:
            if exc.err_code not in (CONSUMER_EXISTS, CONSUMER_NAME_EXISTS):
                raise _cannot(f"consumer {name!r} of stream {stream!r}", exc) from None
            await self._check_consumer(stream, config, strict=strict)  # made meanwhile

    async def _create_consumer(self, stream: str, config: dict[str, Any], action: str) -> None:
        """Create (``action``: ``create``) or update (``update``) a consumer; a server before
        2.10 ignores the action (it creates, or updates what exists)."""
        request = {"stream_name": stream, "config": config, "action": action}
        await self._api.call(f"CONSUMER.CREATE.{stream}.{config['durable_name']}", request)

    async def _check_consumer(self, stream: str, config: dict[str, Any], *, strict: bool) -> bool:
        """Whether the consumer of ``config`` exists; raise ``DeclarationConflict`` if it does
        with other settings (not ``strict``: other subjects)."""
        name = config["durable_name"]
        try:
            info = await self._api.call(f"CONSUMER.INFO.{stream}.{name}")
        except JetStreamError as exc:
            if exc.err_code in (CONSUMER_NOT_FOUND, STREAM_NOT_FOUND):
                return False
            raise _cannot(f"consumer {name!r} of stream {stream!r}", exc) from None
        have = info["config"]
        if strict and have.get("description") == MADE_BY_PRODUCER:  # this worker's settings
            try:
                await self._create_consumer(stream, config, "update")
            except JetStreamError as exc:
                raise _cannot(f"consumer {name!r} of stream {stream!r}", exc) from None
            self._took_over.append((stream, config))
            return True
        if not self._ack_wait_given:  # the default adopts what exists (an older default)
            config = {**config, "ack_wait": have.get("ack_wait", config["ack_wait"])}
        if (strict and _settings_differ(have, config)) or _names_differ(have, config):
            what = f"consumer {name!r} of stream {stream!r}"
            raise _conflict(what, f"nats consumer rm {stream} {name}", have, config)
        return True

    async def check_taken_over(self) -> None:
        """Check again the consumers this declarer updated from a producer's settings since the
        last call: two first workers of one queue starting at once may each have updated one
        of them last (``workers`` to one's settings, ``movers`` to the other's), and the one
        that got no ``DeclarationConflict`` would run on settings it never asked for. Raises
        ``DeclarationConflict`` for a consumer that no longer has this worker's settings."""
        taken, self._took_over = self._took_over, []
        for stream, config in taken:
            await self._check_consumer(stream, config, strict=True)

    async def _expect(self, info: str, what: str, not_found: int) -> None:
        """App(passive=True): check with the JetStream API call ``info`` that ``what`` exists,
        else ``ConfigurationError`` naming it."""
        try:
            await self._api.call(info)
        except JetStreamError as exc:
            if exc.err_code not in (not_found, STREAM_NOT_FOUND):
                raise
            raise ConfigurationError(
                f"{what} does not exist, and App(passive=True) creates nothing on JetStream: "
                "create it as docs/wire.md describes, or drop passive=True"
            ) from None

    def _stream_config(self, name: str, subject: str, retention: str) -> dict[str, Any]:
        return {
            "name": name,
            "subjects": [subject],
            "retention": retention,
            "storage": "file",
            "num_replicas": self._replicas,
        }

    async def _stream_covering(self, subject: str) -> str | None:
        answer = await self._api.call("STREAM.NAMES", {"subject": subject})
        for name in answer.get("streams") or ():
            info = await self._api.call(f"STREAM.INFO.{name}")
            if any(covers(pattern, subject) for pattern in info["config"].get("subjects") or ()):
                return str(name)
        return None


_HOW_TO_SET = {
    "num_replicas": "App(..., replicas=N)",
    "ack_wait": "App(..., ack_wait=seconds)",
    "max_deliver": "App(..., delivery_limit=N)",
}


def _conflict(
    what: str, remove: str, have: dict[str, Any], want: dict[str, Any]
) -> DeclarationConflict:
    differing = [key for key, value in want.items() if have.get(key) != value]
    details = "; ".join(
        f"{_label(key, have.get(key))} on the server, {_label(key, want[key])} in this App"
        for key in differing
    )
    if "filter_subject" in differing:
        advice = (
            "the durable name is taken by a subscription to another subject: give each durable "
            "subscription a name of its own"
        )
    elif "subjects" in differing:
        advice = (
            "two work queues (or a subject of an earlier version's durable subscription) map "
            "to one stream name on the server (dots and other characters become '_' in a "
            "queue's stream names): rename one of them"
        )
    else:
        how = ", ".join(_HOW_TO_SET[key] for key in differing if key in _HOW_TO_SET)
        advice = (
            f"give every App that uses it the same settings{f' ({how})' if how else ''}, or "
            f"delete it ({remove}) so that it is declared again; deleting a stream deletes "
            "its messages"
        )
    return DeclarationConflict(
        f"{what} exists with other settings: {details}. To resolve: {advice}"
    )


def _settings_differ(have: dict[str, Any], want: dict[str, Any]) -> bool:
    return any(have.get(key) != value for key, value in want.items())


def _names_differ(have: dict[str, Any], want: dict[str, Any]) -> bool:
    """Whether an object found under a name is another one (other subjects), not the same
    one with other settings."""
    return any(have.get(key) != want[key] for key in ("subjects", "filter_subject") if key in want)


def _label(key: str, value: Any) -> str:
    if key == "max_deliver" and isinstance(value, int) and value > 0:
        return f"delivery_limit={value - 1} (max_deliver={value})"
    if key == "ack_wait" and isinstance(value, int):
        return f"ack_wait={value / _NS:g}s"
    if key == "num_replicas":
        return f"replicas={value!r}"
    return f"{key}={value!r}"


def _cannot(what: str, exc: JetStreamError) -> PigeonError:
    """A refused creation: ``BrokerError`` when too few servers of a cluster are up to place it
    (a state that passes: try again), else ``ConfigurationError``."""
    if exc.err_code == NO_PEERS_FOR_PLACEMENT:
        return BrokerError(
            f"cannot create {what}: {exc.description}; too few servers of the cluster are up "
            "for its replicas: bring them back, or give replicas= at most the servers running"
        )
    hint = ""
    if "replicas" in exc.description:
        hint = "; a single server keeps one replica: give replicas=1 (the default)"
    return ConfigurationError(f"cannot create {what}: {exc.description}{hint}")
