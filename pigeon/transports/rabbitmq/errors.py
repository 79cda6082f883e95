"""aio-pika / aiormq exceptions translated into ``pigeon.errors``, at the transport's boundary.

Every public method of the RabbitMQ transport runs its client calls inside ``translated``, so no
client exception reaches a user. Each message names the (password-masked) URL and what pigeon was
doing, and says what to check.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import unquote, urlsplit

import aiormq.exceptions as amqp
from pamqp.exceptions import PAMQPException

from pigeon.errors import BrokerError, DeclarationConflict, MessageTooLarge, PigeonError

CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    amqp.AMQPError,
    PAMQPException,
    OSError,  # ConnectionError, socket.gaierror, ...
    RuntimeError,  # aio-pika's "connection closed" and invalid channel states
    TimeoutError,
)
"""What the client may raise; ``translated`` turns each into a ``PigeonError``."""

SETTINGS = {
    "x-delivery-limit": "delivery_limit (x-delivery-limit)",
    "x-queue-type": "queue_type (x-queue-type)",
    "x-dead-letter-exchange": "dead-letter exchange (x-dead-letter-exchange)",
    "x-dead-letter-routing-key": "dead-letter routing key (x-dead-letter-routing-key)",
    "x-message-ttl": "message TTL (x-message-ttl)",
    "durable": "durability (durable)",
    "auto_delete": "auto-delete flag (auto_delete)",
    "exclusive": "exclusive flag (exclusive)",
    "type": "exchange type (type)",
}
"""AMQP arguments by the setting a user recognises."""

_INEQUIVALENT = re.compile(r"inequivalent arg '([^']+)' for (queue|exchange) '([^']*)'(.*)")


@contextmanager
def translated(url: str, action: str) -> Iterator[None]:
    """Run a block of client calls; re-raise a client exception as a ``PigeonError``."""
    try:
        yield
    except PigeonError:
        raise
    except CLIENT_ERRORS as exc:
        raise translate(exc, url, action) from exc


@asynccontextmanager
async def answered_within(seconds: float, url: str, action: str) -> AsyncIterator[None]:
    """Run a block of calls the broker must answer; ``BrokerError`` if it has not within
    ``seconds`` (``reconnect_patience``: a reconnect under way is waited for that long too)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise BrokerError(
            f"{url}: {action}: no answer from the broker within {seconds:g}s "
            "(reconnect_patience); is it overloaded, or out of file handles "
            "(rabbitmq-diagnostics status)?"
        ) from None


def translate(exc: BaseException, url: str, action: str) -> PigeonError:
    """The ``PigeonError`` for a client exception raised while ``action`` on ``url``."""
    text = _reply_text(exc)
    if isinstance(exc, amqp.ChannelPreconditionFailed):
        return _precondition_failed(text, url, action)
    if isinstance(exc, amqp.ChannelAccessRefused):
        return BrokerError(
            f"{url}: access refused while {action} ({text}); grant the user configure, write "
            "and read permissions on the virtual host, and do not use names starting 'amq.'"
        )
    if isinstance(exc, amqp.ChannelLockedResource):
        return BrokerError(f"{url}: {action}: {text}; another connection holds it exclusively")
    if isinstance(exc, amqp.ChannelNotFoundEntity):
        return BrokerError(f"{url}: {action}: {text}")
    if isinstance(exc, amqp.PublishError):
        return BrokerError(f"{url}: {action}: the broker returned the message ({text})")
    if isinstance(exc, amqp.DeliveryError):
        return BrokerError(f"{url}: {action}: the broker refused to store the message (nack)")
    if isinstance(exc, asyncio.TimeoutError):
        return BrokerError(f"{url}: timed out while {action}; is the broker overloaded?")
    return BrokerError(f"{url}: connection lost while {action} ({text or type(exc).__name__})")


def connect_error(
    exc: BaseException, url: str, server: str = "", timeout: float = 10.0
) -> BrokerError:
    """The error for a failed first connection to ``url`` (masked), whose last server tried was
    ``server`` (masked; ``url`` if not given): bad login, unknown vhost, unreachable host, or
    no answer within ``timeout`` seconds (the ``connect_timeout`` option)."""
    parts = urlsplit(server or url)
    user = unquote(parts.username or "guest")
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5672}"
    if isinstance(exc, amqp.ProbableAuthenticationError | amqp.AuthenticationError):
        return BrokerError(
            f"cannot connect to {url}: the broker refused the login of user {user!r}; check the "
            "user name and password in the URL"
        )
    if "Connection.OpenOk" in str(exc) or isinstance(exc, amqp.ConnectionNotAllowed):
        return BrokerError(
            f"cannot connect to {url}: the broker refused to open virtual host {vhost!r}; it "
            f"does not exist or user {user!r} has no permissions on it (rabbitmqctl list_vhosts)"
        )
    if not isinstance(exc, CLIENT_ERRORS) or "bytes but" in str(exc):
        return BrokerError(
            f"cannot connect to {url}: {where} answered, but not as a RabbitMQ does "
            f"({type(exc).__name__}: {_reply_text(exc) or exc!r}); is that an AMQP 0-9-1 port "
            "(5672, or 5671 for amqps)?"
        )
    if isinstance(exc, asyncio.TimeoutError):
        return BrokerError(
            f"cannot connect to {url}: no AMQP answer from {where} within {timeout:g}s "
            "(connect_timeout); is that a RabbitMQ port, and is the node healthy "
            "(rabbitmq-diagnostics status)? A node out of file handles takes connections and "
            "never answers them: RabbitMQ 3.10 reserves three per quorum queue on one node, so "
            "~300 of them fill a limit of 1,024 descriptors; raise the node's limit or delete "
            "unused queues"
        )
    return BrokerError(
        f"cannot connect to {url}: {where} is unreachable ({_reply_text(exc) or exc!r}); is "
        "RabbitMQ running there, and are the host and port right?"
    )


def _precondition_failed(text: str, url: str, action: str) -> PigeonError:
    if "message size" in text or "max size" in text:
        return MessageTooLarge(f"{url}: {text}; raise max_message_size on the broker or send less")
    found = _INEQUIVALENT.search(text)
    if found is None:
        return BrokerError(f"{url}: {action} failed: {text}")
    argument, kind, name, detail = found.groups()
    setting = SETTINGS.get(argument, argument)
    if kind == "exchange":
        return DeclarationConflict(
            f"exchange {name!r} already exists on {url} with another {setting}"
            f"{detail.rstrip('.')}; pigeon declares its exchanges durable, of type topic "
            f"(events, rpc) or direct (dead letters). Use it as it is with App(passive=True), "
            f"name another with App(exchange=...), or delete the exchange"
        )
    return DeclarationConflict(
        f"{kind} {name!r} already exists on {url} with another {setting}{detail.rstrip('.')}; "
        f"every App using it must be configured alike (App(delivery_limit=..., "
        f"queue_type=...)), or delete the {kind} to change its settings"
    )


def _reply_text(exc: BaseException) -> str:
    if isinstance(exc, amqp.PublishError):
        return str(exc.args[0]) if exc.args else str(exc)
    if exc.args and all(isinstance(a, str | int) for a in exc.args):
        return " ".join(str(a) for a in exc.args)
    return str(exc)
