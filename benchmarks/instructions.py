"""Instructions per message under valgrind, pigeon beside raw nats-py: a count the machine's
load does not move at all (``benchmarks.calls`` gives CPU time, which it still does).

``python -m benchmarks.instructions [--count N] [--only pubsub,rpc,rpc64,memory]``. Each case
runs in a child process under ``valgrind --tool=cachegrind --cache-sim=no`` (the nats-server it
starts is not traced) twice, with ``N`` and ``3 N`` messages; the difference over ``2 N`` is the
count per message, start-up and warm-up cancelled out. ``memory`` is the memory benchmark's own
case (``benchmarks.memory_cases``), pigeon beside the bare ``model_validate_json`` loop (the
decisions' figures use ``--count 4000``). Needs valgrind; takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import nats

from benchmarks.nats_cases import IN_FLIGHT, TICK, Tick, nats_server
from pigeon import App

CASES = {"pubsub": 1, "rpc": 1, "rpc64": IN_FLIGHT, "memory": 1}
"""Case -> how many senders at once."""


async def _send(send: Callable[[], Awaitable[Any]], count: int, senders: int) -> None:
    async def sender() -> None:
        for _ in range(count // senders):
            await send()

    await asyncio.gather(*(sender() for _ in range(senders)))


async def child(impl: str, case: str, count: int) -> None:
    """One run: ``impl`` ("pigeon" or "raw") sends ``count`` messages of ``case``."""
    if case == "memory":
        await memory_child(impl, count)
        return
    received, done = 0, asyncio.Event()

    def hit() -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    async with nats_server() as url:
        if impl == "pigeon":
            app = App(url)
            app.subscribe("ins.ticks")(_pigeon_tick(hit))
            app.rpc("ins.rpc")(_pigeon_echo)
            await app.start()
            publish = lambda: app.publish("ins.ticks", TICK)  # noqa: E731
            request = lambda: app.request("ins.rpc", TICK, reply=Tick, timeout=60)  # noqa: E731
        else:
            nc = await nats.connect(url)
            publish, request = await _raw(nc, hit)
        await _send(request, IN_FLIGHT * 2, IN_FLIGHT)  # warm up
        if case == "pubsub":
            await _send(publish, count, 1)
            await done.wait()
        else:
            await _send(request, count, CASES[case])
        await (app.close() if impl == "pigeon" else nc.close())


async def memory_child(impl: str, count: int) -> None:
    """The memory case: ``benchmarks.memory_cases``' pub-sub, or its bare validation loop."""
    from benchmarks import memory_cases

    if impl == "pigeon":
        await memory_cases.pigeon_pubsub(count)
    else:
        memory_cases.bare_validation_loop(count)


def _pigeon_tick(hit: Callable[[], None]) -> Callable[[Tick], Awaitable[None]]:
    async def on_tick(tick: Tick) -> None:
        hit()

    return on_tick


async def _pigeon_echo(tick: Tick) -> Tick:
    return tick


async def _raw(nc: Any, hit: Callable[[], None]) -> tuple[Any, Any]:
    async def on_tick(msg: Any) -> None:
        Tick.model_validate_json(msg.data)
        hit()

    async def echo(msg: Any) -> None:
        await msg.respond(Tick.model_validate_json(msg.data).model_dump_json().encode())

    async def request() -> Tick:
        reply = await nc.request("ins.rpc", TICK.model_dump_json().encode(), timeout=60)
        return Tick.model_validate_json(reply.data)

    await nc.subscribe("ins.ticks", cb=on_tick)
    await nc.subscribe("ins.rpc", queue="rpc", cb=echo)
    await nc.flush()
    return (lambda: nc.publish("ins.ticks", TICK.model_dump_json().encode())), request


def instructions(impl: str, case: str, count: int) -> int:
    """Instructions valgrind counts for one child run."""
    command = [
        *("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"),
        *(sys.executable, "-m", "benchmarks.instructions", "--child", impl, case, str(count)),
    ]
    found = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ)
    match = re.search(r"I\s+refs:\s+([\d,]+)", found.stderr)
    assert match is not None, found.stderr[-2000:]
    return int(match.group(1).replace(",", ""))


def main(count: int, only: list[str]) -> None:
    print(f"{'case':<8} {'pigeon':>12} {'raw':>12} {'pigeon / raw':>13} {'raw / pigeon':>13}")
    print("(per message; raw: nats-py by hand, for memory the bare validation loop)")
    for case in only:
        n = count // CASES[case] * CASES[case]
        pigeon, raw = (
            (instructions(impl, case, 3 * n) - instructions(impl, case, n)) / (2 * n)
            for impl in ("pigeon", "raw")
        )
        print(
            f"{case:<8} {pigeon:>12,.0f} {raw:>12,.0f} {pigeon / raw:>13.2f} {raw / pigeon:>13.3f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1280, help="messages of the shorter run")
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child[0], args.child[1], int(args.child[2])))
    else:
        main(args.count, args.only.split(","))
