"""How pigeon's costs grow with the work (issue 18): ``python -m benchmarks.scaling``.

Subscription cases, memory transport, each at 1, 10, 100 and 1,000 subscriptions (or rpc
handlers):

- ``distinct``: that many subscriptions on distinct subjects (``s.<i>``); events go to one.
- ``wildcard``: that many wildcard subscriptions (``w.<i>.*``); events go to one, on 64 subjects.
- ``new subject``: as ``wildcard``, each event on a subject never seen before (routing uncached).
- ``fan-out``: that many subscriptions on one subject; the cost per delivery.
- ``rpc p50``: that many rpc handlers; sequential requests to one, median latency.

then the load rows of ``benchmarks.scaling_load`` (RPC with 1/64/512 requests in flight, a work
pool of concurrency 1/8/64; resident memory after 1,000,000 events on distinct subjects, during a
burst of 1,000,000, and with 1,000 handlers, each in a fresh process) and of
``benchmarks.scaling_workers`` (``pigeon run --workers 1`` and ``2`` on a NATS server started for
the run). Only the public API is used, so the same files measure an older pigeon
(``PYTHONPATH``). Prints the tables; ``--plot PATH`` draws the curves (``benchmarks.scaling_plot``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from benchmarks import scaling_load, scaling_workers
from benchmarks.scaling_plot import Results, plot
from pigeon import App

SIZES = (1, 10, 100, 1_000)
"""Default sizes (``--sizes`` takes others, 10,000 included)."""
_apps = itertools.count()


class Tick(BaseModel):
    symbol: str
    price: float
    volume: int


TICK = Tick(symbol="PGN", price=12.5, volume=300)


def _app() -> App:
    return App(f"memory://scaling-{next(_apps)}")


class Counter:
    """Counts handled events; ``await reached(n)`` returns once ``n`` have been."""

    def __init__(self) -> None:
        self.n = 0
        self._target = 0
        self._done = asyncio.Event()

    def subscribe(self, app: App, pattern: str) -> None:
        @app.subscribe(pattern)
        async def on_tick(tick: Tick) -> None:
            self.n += 1
            if self.n == self._target:
                self._done.set()

    async def reached(self, target: int) -> None:
        if self.n < target:
            self._target = target
            self._done.clear()
            await self._done.wait()


async def _per_event(
    patterns: list[str], subject_of: Callable[[int], str], events: int, per: int = 1
) -> float:
    """Microseconds per event (or per delivery, ``per`` deliveries an event) to publish
    ``events`` events on ``subject_of(k)`` and have them handled, with a subscriber on each of
    ``patterns``."""
    app = _app()
    counter = Counter()
    for pattern in patterns:
        counter.subscribe(app, pattern)
    async with app:
        await app.publish(subject_of(0), TICK)  # warm: every pump started
        await counter.reached(per)
        gc.collect()  # not the previous case's App, collected while this one is timed
        start = time.perf_counter()
        for k in range(events):
            await app.publish(subject_of(k), TICK)
        await counter.reached((events + 1) * per)
        seconds = time.perf_counter() - start
    return seconds / (events * per) * 1e6


async def distinct(size: int, events: int) -> float:
    return await _per_event([f"s.{i}" for i in range(size)], lambda k: "s.0", events)


async def wildcard(size: int, events: int) -> float:
    return await _per_event([f"w.{i}.*" for i in range(size)], lambda k: f"w.0.e{k % 64}", events)


async def new_subject(size: int, events: int) -> float:
    return await _per_event([f"w.{i}.*" for i in range(size)], lambda k: f"w.0.n{k}", events)


async def fan_out(size: int, events: int) -> float:
    return await _per_event(["f"] * size, lambda k: "f", max(events // size, 20), per=size)


async def rpc_p50(size: int, requests: int) -> float:
    """Median microseconds of a request to one of ``size`` rpc handlers."""
    app = _app()
    for i in range(size):

        @app.rpc(f"r.{i}")
        async def answer(tick: Tick) -> int:
            return tick.volume

    samples = []
    async with app:
        gc.collect()
        for _ in range(requests):
            start = time.perf_counter()
            await app.request("r.0", TICK, reply=int)
            samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


CASES: dict[str, Callable[[int, int], Any]] = {
    "distinct (us/event)": distinct,
    "wildcard (us/event)": wildcard,
    "new subject (us/event)": new_subject,
    "fan-out (us/delivery)": fan_out,
    "rpc p50 (us)": rpc_p50,
}


async def measure(sizes: tuple[int, ...], events: int, rounds: int) -> dict[str, list[float]]:
    """Each case at each size, the median of ``rounds`` interleaved rounds."""
    samples: dict[str, list[list[float]]] = {c: [[] for _ in sizes] for c in CASES}
    for _ in range(rounds):
        for case, run in CASES.items():
            count = events // 20 if case.startswith("rpc") else events
            count = count // 4 if case.startswith("new") else count  # slow before issue 18
            for index, size in enumerate(sizes):
                samples[case][index].append(await run(size, count))
            print(f"   {case}: {samples[case]}", file=sys.stderr, flush=True)
    return {case: [statistics.median(s) for s in rows] for case, rows in samples.items()}


def print_table(sizes: tuple[int, ...], results: dict[str, list[float]]) -> None:
    print(f"{'case':<24}" + "".join(f"{size:>10,}" for size in sizes) + f"{'last/first':>12}")
    for case, values in results.items():
        cells = "".join(f"{value:>10.2f}" for value in values)
        print(f"{case:<24}{cells}{values[-1] / values[0]:>11.2f}x")


def print_rows(header: str, levels: tuple[int, ...], rows: dict[str, list[float]]) -> None:
    print(f"{header:<36}" + "".join(f"{level:>12,}" for level in levels))
    for row, values in rows.items():
        print(f"{row:<36}" + "".join(f"{value:>12,.2f}" for value in values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events per case and size")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--jobs", type=int, default=2_000, help="jobs per pigeon run --workers")
    parser.add_argument("--plot", help="write the curves to this PNG")
    parser.add_argument("--save", help="write the results to this JSON file")
    parser.add_argument("--load", help="plot results saved with --save instead of measuring")
    parser.add_argument("--before", help="saved results of an older pigeon, drawn dashed")
    parser.add_argument("--no-rss", action="store_true", help="skip the resident memory cases")
    parser.add_argument("--no-workers", action="store_true", help="skip pigeon run --workers")
    args = parser.parse_args()
    results = _read(args.load) if args.load else asyncio.run(measure_all(args))
    report(results)
    if args.save:
        with open(args.save, "w") as out:
            json.dump(results, out, indent=1)
    if args.plot:
        before = _before(_read(args.before), results["sizes"]) if args.before else None
        plot(results, args.plot, before)
        print(f"plot written to {args.plot}")


async def measure_all(args: argparse.Namespace) -> Results:
    """Every row the command line asks for."""
    sizes = tuple(int(s) for s in args.sizes.split(","))
    results: Results = {"sizes": list(sizes)}
    results["subscriptions"] = await measure(sizes, args.events, args.rounds)
    results["load"] = await scaling_load.measure(args.events, args.rounds)
    if not args.no_workers:
        results["workers"] = await scaling_workers.measure(args.jobs, args.rounds)
    if not args.no_rss:
        results["rss"] = scaling_load.rss_rows()
    return results


def report(results: Results) -> None:
    """Print every table in ``results``."""
    print_table(tuple(results["sizes"]), results["subscriptions"])
    print()
    print_rows("requests in flight", scaling_load.IN_FLIGHT, rows_of(results["load"], "rpc"))
    print_rows("work pool concurrency", scaling_load.CONCURRENCY, rows_of(results["load"], "work"))
    if "workers" in results:
        print_rows("pigeon run, worker processes", scaling_workers.WORKERS, results["workers"])
    for label, grown in results.get("rss", {}).items():
        print(f"{label}: +{grown['mib']:.1f} MiB ({grown['events_per_s']:,.0f} events/s)")


def rows_of(rows: dict[str, list[float]], prefix: str) -> dict[str, list[float]]:
    return {row: values for row, values in rows.items() if row.startswith(prefix)}


def _before(saved: Results, sizes: list[int]) -> dict[str, list[float]]:
    """The subscription cases of ``saved`` (an older pigeon's) at ``sizes`` (each measured)."""
    index = [saved["sizes"].index(size) for size in sizes]
    return {case: [values[i] for i in index] for case, values in saved["subscriptions"].items()}


def _read(path: str) -> Results:
    with open(path) as saved:
        results: Results = json.load(saved)
    return results


if __name__ == "__main__":
    main()
