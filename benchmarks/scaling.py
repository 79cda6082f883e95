"""How the memory transport's costs grow with the work (issue 18): ``python -m benchmarks.scaling``.

Cases, each at 1, 10, 100, 1,000 and 10,000 subscriptions (or rpc handlers):

- ``distinct``: that many subscriptions on distinct subjects (``s.<i>``); events go to one.
- ``wildcard``: that many wildcard subscriptions (``w.<i>.*``); events go to one, on 64 subjects.
- ``new subject``: as ``wildcard``, each event on a subject never seen before (routing uncached).
- ``fan-out``: that many subscriptions on one subject; the cost per delivery.
- ``rpc p50``: that many rpc handlers; sequential requests to one, median latency.

and, each in a process of its own, the resident memory after 1,000,000 events on distinct
subjects, and the peak during a burst of 1,000,000 events published faster than they are handled.
Only the public API is used, so the same file measures an older pigeon (``PYTHONPATH``). Prints a
table; ``--plot PATH`` draws the curves (matplotlib, ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from pigeon import App

SIZES = (1, 10, 100, 1_000, 10_000)
RSS_EVENTS = 1_000_000
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
    return {case: [statistics.median(s) for s in rows] for case, rows in samples.items()}


def _status_kib(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak) of this process, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


async def _rss_case(case: str, events: int) -> dict[str, float]:
    """Resident memory growth (MiB) over ``events`` events: ``distinct`` subjects to a wildcard
    subscriber (after they are handled), or a ``burst`` on one subject (the peak)."""
    app = _app()
    counter = Counter()
    counter.subscribe(app, "d.*.created" if case == "distinct" else "burst")
    async with app:
        before = _status_kib("VmRSS")
        start = time.perf_counter()
        for k in range(events):
            await app.publish(f"d.{k}.created" if case == "distinct" else "burst", TICK)
        await counter.reached(events)
        seconds = time.perf_counter() - start
        after = _status_kib("VmHWM" if case == "burst" else "VmRSS")
    return {"mib": (after - before) / 1024, "events_per_s": events / seconds}


def rss_in_subprocess(case: str, events: int) -> dict[str, float]:
    """Run ``_rss_case`` in a fresh interpreter, so earlier cases do not count."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.scaling", "--rss", case, "--events", str(events)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def print_table(sizes: tuple[int, ...], results: dict[str, list[float]]) -> None:
    print(f"{'case':<24}" + "".join(f"{size:>10,}" for size in sizes) + f"{'last/first':>12}")
    for case, values in results.items():
        cells = "".join(f"{value:>10.2f}" for value in values)
        print(f"{case:<24}{cells}{values[-1] / values[0]:>11.2f}x")


def plot(
    sizes: tuple[int, ...],
    results: dict[str, list[float]],
    path: str,
    before: dict[str, list[float]] | None = None,
) -> None:
    """Draw ``results`` (and ``before``, dashed, if given: an older pigeon's) against ``sizes``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.5, 4.6))
    for index, (case, values) in enumerate(results.items()):
        color = f"C{index}"
        axis.plot(sizes, values, marker="o", color=color, label=case)
        if before and case in before:
            axis.plot(sizes, before[case], linestyle="--", marker="x", color=color, alpha=0.6)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("subscriptions (rpc: handlers)")
    axis.set_ylabel("microseconds")
    dashed = " (dashed: before)" if before else ""
    axis.set_title(f"pigeon memory transport: cost as subscriptions grow{dashed}")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events per case and size")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--plot", help="write the curves to this PNG")
    parser.add_argument("--save", help="write the results to this JSON file")
    parser.add_argument("--load", help="plot results saved with --save instead of measuring")
    parser.add_argument("--before", help="saved results of an older pigeon, drawn dashed")
    parser.add_argument("--no-rss", action="store_true", help="skip the 1,000,000-event cases")
    parser.add_argument("--rss", choices=("distinct", "burst"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss:
        print(json.dumps(asyncio.run(_rss_case(args.rss, args.events))))
        return
    sizes = tuple(int(s) for s in args.sizes.split(","))
    if args.load:
        results = _read(args.load)
    else:
        results = asyncio.run(measure(sizes, args.events, args.rounds))
        _report(sizes, results, rss=not args.no_rss)
    if args.save:
        with open(args.save, "w") as out:
            json.dump(results, out, indent=1)
    if args.plot:
        plot(sizes, results, args.plot, _read(args.before) if args.before else None)
        print(f"plot written to {args.plot}")


def _report(sizes: tuple[int, ...], results: dict[str, list[float]], *, rss: bool) -> None:
    print_table(sizes, results)
    for case in ("distinct", "burst") if rss else ():
        grown = rss_in_subprocess(case, RSS_EVENTS)
        print(
            f"RSS {case}, {RSS_EVENTS:,} events: +{grown['mib']:.1f} MiB"
            f" ({grown['events_per_s']:,.0f} events/s)"
        )


def _read(path: str) -> dict[str, list[float]]:
    with open(path) as saved:
        results: dict[str, list[float]] = json.load(saved)
    return results


if __name__ == "__main__":
    main()
