"""pigeon's NATS client writes a request or reply at once and the rest through nats-py's
flusher (``nats/writes.py``): what a user of the client sees is what nats-py's own path gives,
only sooner. Commands reach the server in the order they were made (PINGs too, which nats-py
2.16 wrote ahead of its buffer), through reconnects, failover, close and drain, backpressure,
TLS and JetStream; a fake server records the commands where their order is the question."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats import errors as nats_errors
from nats.aio import client as nats_client
from nats.aio.msg import Msg

from pigeon.testing.waiting import wait_for
from pigeon.transports.nats.client import TESTED_VERSIONS, new_client, registered
from tests.brokers.nats import NatsServer, routed_servers

pytestmark = pytest.mark.skipif(
    nats_client.__version__ not in TESTED_VERSIONS,
    reason="nats-py's own client is used on this version",
)


# ---------------------------------------------------------------------------------------------
# A fake NATS server that records every command it reads, in order.


@dataclass
class Recording:
    commands: list[tuple[str, str]] = field(default_factory=list)
    """(op, argument): PUB/HPUB -> (op, "subject payload"), SUB -> ("SUB", "subject sid"),
    UNSUB -> ("UNSUB", sid), PING -> ("PING", "")."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def ops(self, *skip: str) -> list[tuple[str, str]]:
        return [command for command in self.commands if command[0] not in skip]


@contextlib.asynccontextmanager
async def recording_server(
    *, tls: ssl.SSLContext | None = None, answer_pings: bool = True
) -> AsyncIterator[tuple[str, Recording]]:
    """A fake NATS server on a free loopback port; yields its URL and what it read."""
    recording = Recording()
    served: list[asyncio.Task[None]] = []
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(asyncio.current_task())  # type: ignore[arg-type]
        writers.append(writer)
        info = (
            b'INFO {"server_id":"rec","version":"2.10.0","max_payload":1048576,'
            b'"headers":true,"proto":1' + (b',"tls_required":true' if tls else b"") + b"}\r\n"
        )
        writer.write(info)
        await writer.drain()
        if tls is not None:
            await writer.start_tls(tls)
        first_ping = True
        try:
            while line := await reader.readline():
                op, _, rest = line.rstrip(b"\r\n").partition(b" ")
                op_s = op.decode().upper()
                if op_s in ("PUB", "HPUB"):
                    parts = rest.split()
                    size = int(parts[-1])
                    payload = (await reader.readexactly(size + 2))[:-2]
                    if op_s == "HPUB":
                        payload = payload[int(parts[-2]) :]
                    recording.commands.append((op_s, f"{parts[0].decode()} {payload.decode()}"))
                elif op_s == "SUB":
                    parts = rest.split()
                    recording.commands.append(("SUB", f"{parts[0].decode()} {parts[-1].decode()}"))
                elif op_s == "UNSUB":
                    recording.commands.append(("UNSUB", rest.decode().split()[0]))
                elif op_s == "PING":
                    if first_ping:  # the handshake's: always answered
                        first_ping = False
                        writer.write(b"PONG\r\n")
                    else:
                        recording.commands.append(("PING", ""))
                        if answer_pings:
                            writer.write(b"PONG\r\n")
                elif op_s in ("CONNECT", "PONG"):
                    pass
                recording.changed.set()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    scheme = "tls" if tls else "nats"
    try:
        yield f"{scheme}://127.0.0.1:{port}", recording
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.wait_for(asyncio.gather(*served, return_exceptions=True), 10)
        for writer in writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        await server.wait_closed()


async def until(recording: Recording, condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return bool(condition())

    await wait_for(check, timeout=timeout, what="the fake server to read the commands")


# ---------------------------------------------------------------------------------------------
# 1. Order of commands on the wire.


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_commands_of_many_tasks_reach_the_server_in_the_order_they_were_made(
    seed: int,
) -> None:
    """PUB, SUB, UNSUB and publishes with a reply, made by several tasks that yield at random
    points (some ops written at once, some by the flusher), reach the server in exactly the order
    the calls made them (each call appends its command without suspending first), the PINGs
    of ``flush()`` among them."""
    rng = random.Random(seed)
    expected: list[tuple[str, str]] = []
    async with recording_server() as (url, recording):
        client = new_client()
        await client.connect(url, allow_reconnect=False)
        plans = [[rng.randrange(10) for _ in range(300)] for _ in range(5)]

        async def run(task: int, plan: list[int]) -> None:
            subs = []
            for step, choice in enumerate(plan):
                if choice < 4:
                    expected.append(("PUB", f"t{task} {step}"))
                    await client.publish(f"t{task}", str(step).encode())
                elif choice == 4:
                    expected.append(("PUB", f"t{task}.r {step}"))
                    await client.publish(f"t{task}.r", str(step).encode(), reply=f"_r.{task}")
                elif choice == 5:
                    expected.append(("HPUB", f"t{task}.h {step}"))
                    await client.publish(f"t{task}.h", str(step).encode(), headers={"a": "b"})
                elif choice == 6:
                    sid = client._sid + 1
                    expected.append(("SUB", f"s.{task}.{step} {sid}"))
                    subs.append(await client.subscribe(f"s.{task}.{step}"))
                elif choice == 7 and subs:
                    sub = subs.pop(rng.randrange(len(subs)))
                    expected.append(("UNSUB", f"{sub._id}"))
                    await sub.unsubscribe()
                elif choice == 8:
                    await asyncio.sleep(0)
                elif choice == 9:
                    expected.append(("PING", ""))
                    await client.flush()

        await asyncio.gather(*(run(n, plan) for n, plan in enumerate(plans)))
        expected.append(("PING", ""))
        await client.flush()
        await until(recording, lambda: len(recording.commands) >= len(expected))
        await client.close()
    got = recording.commands
    first = next((n for n, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), 0)
    where = slice(max(first, 3) - 3, first + 5)
    assert got == expected, f"first difference at {first}: {got[where]} != {expected[where]}"


# ---------------------------------------------------------------------------------------------
# 2. flush(): its PONG should mean the server has read every command made before it.


@pytest.mark.parametrize("count", [1, 2, 5])
async def test_flush_returns_after_the_server_read_every_earlier_publish(count: int) -> None:
    """``count`` publishes made in one trip, then ``flush()``: the server reads the flush's
    PING after every one of them (what ``flush`` promises; nats-py 2.16's ``_send_ping`` wrote
    the PING straight to the socket, ahead of its buffer)."""
    async with recording_server() as (url, recording):
        client = new_client()
        await client.connect(url, allow_reconnect=False)
        await asyncio.sleep(0)  # a fresh trip
        for n in range(count):
            await client.publish("f", str(n).encode())
        await client.flush()
        await until(recording, lambda: len(recording.commands) >= count + 1)
        await client.close()
    ops = [op for op, _ in recording.commands]
    assert ops.index("PING") == count, f"the PING came at {ops}"


async def test_subscribe_then_flush_registers_the_subscription() -> None:
    """``subscribe`` then one ``flush()`` (the usual nats-py idiom): the server reads SUB before
    the PING, so a publish after the flush finds the subscriber (nats-py 2.16's own client
    sends PING SUB SUB)."""
    async with recording_server() as (url, recording):
        client = new_client()
        await client.connect(url, allow_reconnect=False)
        await client.subscribe("a")
        await client.subscribe("b")  # the second one of the trip
        await client.flush()
        await until(recording, lambda: len(recording.commands) >= 3)
        await client.close()
    ops = [op for op, _ in recording.commands]
    assert ops == ["SUB", "SUB", "PING"], ops


ATTEMPTS = 200


async def test_subscribe_then_flush_registers_the_subscription_on_a_real_server(
    nats_url: str, uid: str
) -> None:
    """The same against nats-server, ``ATTEMPTS`` times: two subscriptions made in one trip,
    one flush, then another client publishes to the second: it is delivered (a race: a few in
    a hundred were lost while nats-py wrote the PING ahead of its buffer)."""
    client = new_client()
    await client.connect(nats_url, allow_reconnect=False)
    other = await nats.connect(nats_url)
    got: list[bytes] = []

    async def on(msg: Msg) -> None:
        got.append(msg.data)

    try:
        for attempt in range(ATTEMPTS):
            await asyncio.sleep(0)
            await client.subscribe(f"{uid}.a{attempt}", cb=on)
            await client.subscribe(f"{uid}.b{attempt}", cb=on)
            await client.flush()
            await other.publish(f"{uid}.b{attempt}", b"%d" % attempt)
            await other.flush()
            await other.flush()
        await wait_for(
            lambda: len(got) == ATTEMPTS, timeout=3, what=f"every publish: {len(got)} delivered"
        )
    finally:
        await other.close()
        await client.close()


# ---------------------------------------------------------------------------------------------
# 3. Big payloads from many tasks on a real server: all arrive, each task's in order.


async def test_big_payloads_of_many_tasks_all_arrive_in_order(nats_url: str, uid: str) -> None:
    """4 tasks publishing 12 payloads of ~1 MiB (the server's max_payload) each, yielding now and
    then: every payload arrives, each task's in order, and the client's stats count them."""
    subscriber = await nats.connect(nats_url, pending_size=64 * 1024 * 1024)
    seen: dict[int, list[int]] = {}
    done = asyncio.Event()
    tasks, each = 4, 12

    async def record(msg: Msg) -> None:
        task, number = map(int, msg.data[:32].split(b":")[:2])
        seen.setdefault(task, []).append(number)
        if sum(map(len, seen.values())) == tasks * each:
            done.set()

    await subscriber.subscribe(
        f"{uid}.big", cb=record, pending_bytes_limit=1024 * 1024 * 1024, pending_msgs_limit=-1
    )
    await registered(subscriber)  # nats-py's own flush may pass its SUB
    client = new_client()
    await client.connect(nats_url, allow_reconnect=False)
    size = client._max_payload - 64

    async def publish(task: int) -> None:
        for number in range(each):
            head = f"{task}:{number}:".encode()
            await client.publish(f"{uid}.big", head + b"x" * (size - len(head)))
            if number % 3 == task % 3:
                await asyncio.sleep(0)

    try:
        await asyncio.gather(*(publish(n) for n in range(tasks)))
        await client.flush(timeout=30)
        await wait_for(done.is_set, timeout=30, what=f"every payload: {seen}")
        assert client.stats["out_msgs"] == tasks * each
        assert client.stats["out_bytes"] == tasks * each * size
        assert client.pending_data_size == 0
    finally:
        await client.close()
        await subscriber.close()
    assert seen == {n: list(range(each)) for n in range(tasks)}


# ---------------------------------------------------------------------------------------------
# 4. A cluster failover: what was published while reconnecting reaches the other node.


@pytest.fixture
def pair() -> Iterator[list[NatsServer]]:
    """Two servers routed to each other (no JetStream)."""
    with routed_servers(2, cluster="writes", prefix="b", jetstream=False) as servers:
        yield servers


async def _quiet(error: Exception) -> None:
    pass


async def test_failover_keeps_order_and_what_was_published_while_reconnecting(
    pair: list[NatsServer],
) -> None:
    """A publisher on node 0 (knowing node 1) publishes numbered events without pause, from
    three tasks; node 0 is killed. Every event published while the client was reconnecting
    reaches the subscriber on node 1, none twice, each task's in order; requests made while
    reconnecting are answered by a responder on node 1 once the client is on node 1."""
    a, b = pair
    watcher = await nats.connect(b.url, error_cb=_quiet)
    got: dict[int, list[int]] = {}

    async def record(msg: Msg) -> None:
        task, number = map(int, msg.data.split(b":"))
        got.setdefault(task, []).append(number)

    async def answer(msg: Msg) -> None:
        await msg.respond(msg.data)

    await watcher.subscribe("fo.events", cb=record)
    await watcher.subscribe("fo.echo", cb=answer)
    await registered(watcher)  # nats-py's own flush may pass its SUB
    reconnected, disconnected = asyncio.Event(), asyncio.Event()

    async def on_reconnected() -> None:
        reconnected.set()

    async def on_disconnected() -> None:
        if not disconnected.is_set():
            disconnected.set()
            await asyncio.sleep(0.3)  # nats-py awaits it: an outage of 0.3 s at least

    client = new_client()
    await client.connect(
        servers=[a.url, b.url],
        dont_randomize=True,
        reconnect_time_wait=0.1,
        error_cb=_quiet,
        reconnected_cb=on_reconnected,
        disconnected_cb=on_disconnected,
    )
    probes = iter(range(1_000_000))

    async def route_known() -> bool:
        await client.publish("fo.events", b"99:%d" % next(probes))
        await client.flush()
        return 99 in got

    await wait_for(route_known, what="node 0 to know node 1's subscription (the route)")
    got.clear()
    while_reconnecting: dict[int, set[int]] = {0: set(), 1: set(), 2: set()}
    published: dict[int, int] = {}
    stop = False
    answers: list[bytes] = []

    async def publish(task: int) -> None:
        number = 0
        while not stop:
            reconnecting = client.is_reconnecting
            try:
                await client.publish("fo.events", b"%d:%d" % (task, number))
            except nats_errors.OutboundBufferLimitError:
                await asyncio.sleep(0.01)
                continue
            if reconnecting:
                while_reconnecting[task].add(number)
            number += 1
            published[task] = number
            if number % (task + 2) == 0:
                await asyncio.sleep(0)
            if number % 200 == 0:
                await asyncio.sleep(0.001)

    async def request_when_reconnecting() -> None:
        await disconnected.wait()
        assert client.is_reconnecting
        reply = await client.request("fo.echo", b"hello", timeout=10)
        answers.append(reply.data)

    publishers = [asyncio.create_task(publish(n)) for n in range(3)]
    requester = asyncio.create_task(request_when_reconnecting())
    await wait_for(lambda: sum(published.values()) > 3000, what="publishing under way")
    await asyncio.to_thread(a.stop)
    await asyncio.wait_for(reconnected.wait(), 15)
    await wait_for(lambda: sum(published.values()) > 0 and client.is_connected, what="connected")
    await asyncio.wait_for(requester, 15)
    stop = True
    await asyncio.gather(*publishers)
    await client.flush(timeout=10)
    total = sum(published.values())

    def arrived_all_late() -> bool:
        return all(got.get(task, [-1])[-1:] == [published[task] - 1] for task in published)

    await wait_for(arrived_all_late, timeout=15, what="the last events")
    await client.close()
    await watcher.close()
    lost = {
        task: sorted(set(range(published[task])) - set(got.get(task, []))) for task in published
    }
    lost_while_reconnecting = {
        task: sorted(while_reconnecting[task] - set(got.get(task, []))) for task in published
    }
    print(
        f"\nfailover: {total} published, {sum(map(len, while_reconnecting.values()))} while "
        f"reconnecting, {sum(map(len, lost.values()))} lost in all "
        f"({ {t: (v[0], v[-1], len(v)) for t, v in lost.items() if v} })"
    )
    assert answers == [b"hello"]
    for task, numbers in got.items():
        assert numbers == sorted(set(numbers)), f"task {task}: out of order or twice"
    assert all(not numbers for numbers in lost_while_reconnecting.values()), lost_while_reconnecting


# ---------------------------------------------------------------------------------------------
# 5. Drain / close while a burst is being published: what publish() accepted arrives.


@pytest.mark.parametrize("how", ["drain", "close"])
async def test_every_accepted_publish_arrives_when_closing_mid_burst(
    nats_url: str, uid: str, how: str
) -> None:
    """Four tasks publish until the client refuses; meanwhile the client is drained (or
    closed). Every publish that returned normally reaches a subscriber on another connection."""
    subscriber = await nats.connect(nats_url)
    got: dict[int, list[int]] = {}

    async def record(msg: Msg) -> None:
        task, number = map(int, msg.data.split(b":"))
        got.setdefault(task, []).append(number)

    await subscriber.subscribe(f"{uid}.burst", cb=record, pending_msgs_limit=-1)
    await registered(subscriber)  # nats-py's own flush may pass its SUB
    client = new_client()
    await client.connect(nats_url, allow_reconnect=False)
    await client.subscribe(f"{uid}.mine", cb=record)  # something to drain
    accepted: dict[int, int] = {}

    async def publish(task: int) -> None:
        number = 0
        while True:
            try:
                await client.publish(f"{uid}.burst", b"%d:%d" % (task, number))
            except (nats_errors.ConnectionClosedError, nats_errors.ConnectionDrainingError):
                return
            number += 1
            accepted[task] = number
            if number % (task + 3) == 0:
                await asyncio.sleep(0)

    publishers = [asyncio.create_task(publish(n)) for n in range(4)]
    await wait_for(lambda: sum(accepted.values()) > 20000, what="the burst under way")
    if how == "drain":
        await client.drain()
    else:
        await client.close()
    await asyncio.wait_for(asyncio.gather(*publishers), 10)

    def all_arrived() -> bool:
        return all(len(got.get(task, [])) >= count for task, count in accepted.items())

    try:
        await wait_for(all_arrived, timeout=15, what="every accepted publish")
    finally:
        await subscriber.close()
    assert {task: got.get(task) for task in accepted} == {
        task: list(range(count)) for task, count in accepted.items()
    }


# ---------------------------------------------------------------------------------------------
# 6. A slow server: publishers wait; the client holds a bounded amount.


async def test_flush_timeout_against_a_server_that_stops_answering() -> None:
    """A server that reads but never answers PING: ``flush(timeout=1)`` raises its timeout
    after about a second, and a publish before it still reaches the server."""
    async with recording_server(answer_pings=False) as (url, recording):
        client = new_client()
        await client.connect(url, allow_reconnect=False)
        # connect answered the handshake's PING; the later ones go unanswered
        await client.publish("x", b"1")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(nats_errors.FlushTimeoutError):
            await client.flush(timeout=1)
        took = loop.time() - started
        await until(recording, lambda: ("PUB", "x 1") in recording.commands)
        await client.close()
    assert 0.9 < took < 2.0, took


@contextlib.asynccontextmanager
async def slow_server(
    *, tls: ssl.SSLContext | None = None, resume: asyncio.Event
) -> AsyncIterator[str]:
    """A fake server that answers the handshake, then reads nothing until ``resume`` is set,
    and then reads to the end."""
    served: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(asyncio.current_task())  # type: ignore[arg-type]
        info = (
            b'INFO {"server_id":"slow","version":"2.10.0","max_payload":1048576,'
            b'"headers":true,"proto":1' + (b',"tls_required":true' if tls else b"") + b"}\r\n"
        )
        writer.write(info)
        await writer.drain()
        if tls is not None:
            await writer.start_tls(tls)
        while b"PING" not in await reader.readline():
            pass
        writer.write(b"PONG\r\n")
        await writer.drain()
        await resume.wait()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while await reader.read(1024 * 1024):
                pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'tls' if tls else 'nats'}://127.0.0.1:{port}"
    finally:
        resume.set()
        await asyncio.wait_for(asyncio.gather(*served, return_exceptions=True), 10)
        server.close()
        await server.wait_closed()


def _held(client: nats_client.Client) -> int:
    """Bytes the client holds outside the kernel: its command buffer, the socket transport's
    buffer and, on TLS, the TLS layer's and the TCP transport's under it."""
    transport = client._transport._io_writer.transport
    held = client._pending_data_size + transport.get_write_buffer_size()
    protocol = getattr(transport, "_ssl_protocol", None)
    if protocol is not None:
        held += protocol._transport.get_write_buffer_size()
    return held


# ---------------------------------------------------------------------------------------------
# 7. TLS.


@pytest.fixture(scope="module")
def certs() -> Iterator[Path]:
    """A self-signed certificate for 127.0.0.1 (openssl)."""
    directory = Path(tempfile.mkdtemp(prefix="pigeon-tls-"))
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-keyout",
                str(directory / "key.pem"),
                "-out",
                str(directory / "cert.pem"),
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no openssl: {exc}")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _server_tls(certs: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs / "cert.pem", certs / "key.pem")
    return context


def _client_tls(certs: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    return context


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_a_stalled_server_makes_publishers_wait_with_a_bounded_buffer(
    transport: str, certs: Path
) -> None:
    """Against a server that stops reading, publishers (four tasks, yielding often) stop
    before the client holds far more than nats-py's pending limit (1 MiB here) plus the socket's
    high-water marks; then, the server reading again, everything is written."""
    resume = asyncio.Event()
    tls = _server_tls(certs) if transport == "tls" else None
    async with slow_server(tls=tls, resume=resume) as url:
        client = new_client()
        options = {"tls": _client_tls(certs)} if tls else {}
        await client.connect(url, allow_reconnect=False, pending_size=1024 * 1024, **options)
        payload = b"x" * 4096
        published, most_held, stopping = 0, 0, False

        async def publish_until_stopped() -> None:
            nonlocal published, most_held
            while not stopping:
                await client.publish("stalled", payload)
                published += 1
                most_held = max(most_held, _held(client))
                if published % 4 == 0:
                    await asyncio.sleep(0)

        publishers = [asyncio.create_task(publish_until_stopped()) for _ in range(4)]
        limit = 256 * 1024 * 1024 // len(payload)
        while published < limit:
            before = published
            await asyncio.sleep(1)
            if published == before:
                break  # they wait
        stopping = True
        resume.set()
        await asyncio.wait_for(asyncio.gather(*publishers), 30)
        await wait_for(lambda: _held(client) == 0, timeout=30, what="everything written")
        await client.close()
    print(f"\n{transport}: {published} publishes before waiting, at most {most_held} held")
    assert published < limit, f"{published} publishes of 4 KiB never waited"
    assert most_held <= 8 * 1024 * 1024, f"{most_held} bytes held"


@pytest.fixture
def tls_server(certs: Path) -> Iterator[NatsServer]:
    server = NatsServer(
        name="writes-tls",
        jetstream=False,
        args=("--tls", "--tlscert", str(certs / "cert.pem"), "--tlskey", str(certs / "key.pem")),
    )
    server.start()
    yield server
    server.remove()


async def test_order_and_requests_over_tls(tls_server: NatsServer, certs: Path) -> None:
    """Over a TLS nats-server: events of several tasks arrive in each task's order, requests
    made between them are answered, and the stats count them."""
    url = f"tls://127.0.0.1:{tls_server.port}"
    client = new_client()
    await client.connect(url, tls=_client_tls(certs), allow_reconnect=False)
    other = await nats.connect(url, tls=_client_tls(certs))
    seen: dict[int, list[int]] = {}

    async def record(msg: Msg) -> None:
        task, number = map(int, msg.data.split(b":"))
        seen.setdefault(task, []).append(number)

    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    await other.subscribe("tls.events", cb=record, pending_msgs_limit=-1)
    await other.subscribe("tls.echo", cb=echo)
    await registered(other)  # nats-py's own flush may pass its SUB
    each = 3000

    async def publish(task: int) -> None:
        for number in range(each):
            await client.publish("tls.events", b"%d:%d" % (task, number))
            if number % (task + 2) == 0:
                await asyncio.sleep(0)
            if number % 500 == 0:
                reply = await client.request("tls.echo", b"%d" % number, timeout=5)
                assert reply.data == b"%d" % number

    try:
        await asyncio.gather(*(publish(n) for n in range(4)))
        await client.flush()
        await wait_for(
            lambda: sum(map(len, seen.values())) == 4 * each, timeout=20, what="every event"
        )
    finally:
        await client.close()
        await other.close()
    assert seen == {n: list(range(each)) for n in range(4)}


# ---------------------------------------------------------------------------------------------
# 8. A server restarted while publishing on a single node: the client's buffer across the
#    outage, and order.


async def test_restart_keeps_per_publisher_order_and_no_duplicates(uid: str) -> None:
    """A server restarted while two tasks publish numbered events and a subscriber (another
    client, reconnecting too) listens: after both reconnect, no event arrives twice or out
    of its task's order, and events published once both are back all arrive."""
    server = NatsServer(name="writes-restart", jetstream=False)
    server.start()
    try:
        back = {"sub": asyncio.Event(), "pub": asyncio.Event()}

        def on_back(name: str):  # type: ignore[no-untyped-def]
            async def callback() -> None:
                back[name].set()

            return callback

        watcher = await nats.connect(
            server.url, reconnect_time_wait=0.1, error_cb=_quiet, reconnected_cb=on_back("sub")
        )
        got: dict[int, list[int]] = {}

        async def record(msg: Msg) -> None:
            task, number = map(int, msg.data.split(b":"))
            got.setdefault(task, []).append(number)

        await watcher.subscribe(f"{uid}.r", cb=record, pending_msgs_limit=-1)
        await registered(watcher)  # nats-py's own flush may pass its SUB
        client = new_client()
        await client.connect(
            server.url, reconnect_time_wait=0.1, error_cb=_quiet, reconnected_cb=on_back("pub")
        )
        published: dict[int, int] = {}
        stop = False
        both_back_at: dict[int, int] = {}

        async def publish(task: int) -> None:
            number = 0
            while not stop:
                if back["sub"].is_set() and back["pub"].is_set() and task not in both_back_at:
                    await watcher.flush()
                    both_back_at[task] = number
                try:
                    await client.publish(f"{uid}.r", b"%d:%d" % (task, number))
                except nats_errors.OutboundBufferLimitError:
                    await asyncio.sleep(0.01)
                    continue
                number += 1
                published[task] = number
                if number % (task + 2) == 0:
                    await asyncio.sleep(0)
                if number % 100 == 0:
                    await asyncio.sleep(0.001)

        publishers = [asyncio.create_task(publish(n)) for n in range(2)]
        await wait_for(lambda: sum(published.values()) > 3000, what="publishing under way")
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(back["sub"].wait(), 15)
        await asyncio.wait_for(back["pub"].wait(), 15)
        await wait_for(lambda: len(both_back_at) == 2, what="both tasks past the restart")
        await wait_for(
            lambda: all(published[t] > both_back_at[t] + 500 for t in published),
            what="publishing after the restart",
        )
        stop = True
        await asyncio.gather(*publishers)
        await client.flush(timeout=10)
        await wait_for(
            lambda: all(got.get(t, [-1])[-1:] == [published[t] - 1] for t in published),
            timeout=15,
            what="the last events",
        )
        await client.close()
        await watcher.close()
    finally:
        server.remove()
    lost = {t: len(set(range(published[t])) - set(got.get(t, []))) for t in published}
    print(f"\nrestart: {published} published, lost {lost}")
    for task, numbers in got.items():
        assert numbers == sorted(set(numbers)), f"task {task}: out of order or twice"
    for task, start in both_back_at.items():
        assert set(range(start, published[task])) <= set(got[task])


# ---------------------------------------------------------------------------------------------
# 9. A connection reset while publishing: what the client still held is sent after reconnecting.


@pytest.mark.parametrize("per_trip", [1, 5])
async def test_a_reset_connection_loses_no_more_publishes_than_nats_py_s_own_path(
    per_trip: int,
) -> None:
    """A fake server resets the connection (RST) right after reading the 1000th publish; the
    client publishes ``per_trip`` numbered messages per trip through the event loop throughout,
    and reconnects to the same server. What was written before the client's socket knew of the
    reset is lost (core NATS is at most once: it was in flight); every publish made once the
    socket is closing stays in the client's buffer and is sent after the reconnect, none
    twice."""
    received: list[int] = []
    writers: list[asyncio.StreamWriter] = []
    served: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(asyncio.current_task())  # type: ignore[arg-type]
        writers.append(writer)
        first = len(writers) == 1
        writer.write(
            b'INFO {"server_id":"reset","version":"2.10.0","max_payload":1048576,'
            b'"headers":true,"proto":1}\r\n'
        )
        await writer.drain()
        try:
            while line := await reader.readline():
                op, _, rest = line.rstrip(b"\r\n").partition(b" ")
                if op == b"PUB":
                    size = int(rest.split()[-1])
                    received.append(int((await reader.readexactly(size + 2))[:-2]))
                    if first and len(received) == 1000:
                        sock = writer.transport.get_extra_info("socket")
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        writer.transport.abort()
                        return
                elif op == b"PING":
                    writer.write(b"PONG\r\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reconnected = asyncio.Event()

    async def on_reconnected() -> None:
        reconnected.set()

    client = new_client()
    await client.connect(
        f"nats://127.0.0.1:{port}",
        reconnect_time_wait=0.05,
        error_cb=_quiet,
        reconnected_cb=on_reconnected,
    )
    number, closing_from = 0, None
    try:
        while number < 2000:
            socket_closing = client._transport._io_writer.transport.is_closing()
            if closing_from is None and socket_closing:
                closing_from = number
            for _ in range(per_trip):
                await client.publish("s", str(number).encode())
                number += 1
            await asyncio.sleep(0)
        await asyncio.wait_for(reconnected.wait(), 5)
        await client.flush(timeout=5)
    finally:
        await client.close()
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.wait_for(asyncio.gather(*served, return_exceptions=True), 5)
        await server.wait_closed()
    lost = sorted(set(range(number)) - set(received))
    assert len(received) == len(set(received)), "a publish arrived twice"
    assert closing_from is not None, "the reset was not seen while publishing"
    assert all(n < closing_from for n in lost), (
        f"lost {lost}, the socket closing from {closing_from}"
    )
    assert len(lost) <= 5 * per_trip, f"{len(lost)} lost: {lost}"


# ---------------------------------------------------------------------------------------------
# 10. JetStream through the client: publishes acknowledged, messages fetched and acked.


async def test_jetstream_publishes_and_acks_of_many_tasks(
    nats_url: str, raw: nats.NATS, uid: str
) -> None:
    """Six tasks publish to a stream through JetStream (each awaiting its PubAck), a pull
    consumer fetches everything and acks each message (some with ``ack``, some with
    ``ack_sync``): every publish is stored once, in each task's order, and nothing is left
    pending or unacknowledged."""
    stream = f"BREAKER_{uid}"
    await raw.jetstream().add_stream(name=stream, subjects=[f"{uid}.js.>"])
    client = new_client()
    await client.connect(nats_url, allow_reconnect=False)
    js = client.jetstream()
    each, tasks = 150, 6

    async def publish(task: int) -> None:
        for number in range(each):
            ack = await js.publish(f"{uid}.js.{task}", b"%d:%d" % (task, number))
            assert ack.stream == stream
            if number % (task + 2) == 0:
                await asyncio.sleep(0)

    try:
        await asyncio.gather(*(publish(n) for n in range(tasks)))
        info = await js.stream_info(stream)
        assert info.state.messages == each * tasks
        consumer = await js.pull_subscribe(f"{uid}.js.>", durable="d", stream=stream)
        seen: dict[int, list[int]] = {}
        fetched = 0
        while fetched < each * tasks:
            batch = await consumer.fetch(100, timeout=5)
            for n, msg in enumerate(batch):
                task, number = map(int, msg.data.split(b":"))
                seen.setdefault(task, []).append(number)
                if n % 5 == 0:
                    await msg.ack_sync()
                else:
                    await msg.ack()
            fetched += len(batch)
        await client.flush()

        async def all_acked() -> bool:
            state = await js.consumer_info(stream, "d")
            return state.num_ack_pending == 0 and state.num_pending == 0

        await wait_for(all_acked, timeout=10, what="every message acked")
    finally:
        await client.close()
    assert seen == {n: list(range(each)) for n in range(tasks)}
