"""Run every benchmark and print one table: pigeon beside the raw clients and FastStream.

``python -m benchmarks.run [--count N] [--rounds N]
[--only memory,codec,nats,rabbitmq,redis,compose,scaling,import]`` (NATS and RabbitMQ cases:
``--rounds`` interleaved rounds, default 3, the median counts; the memory and codec suites take
the best of three rounds and ignore it). Absolute figures drift on a shared machine;
compare the ratios, which come from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util

from benchmarks import common
from benchmarks.common import Result, print_table

SUITES = ("memory", "codec", "nats", "rabbitmq", "redis", "compose", "scaling", "import")


async def main(count: int, only: list[str]) -> None:
    results: list[Result] = []
    for name in only:
        module = importlib.import_module(f"benchmarks.{name}_cases")
        print(f"-- {name} ...", flush=True)
        results.extend(await module.run(count))
    print_table(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000, help="messages per throughput case")
    parser.add_argument("--rounds", type=int, default=common.ROUNDS, help="interleaved rounds")
    parser.add_argument(
        "--only", default=",".join(SUITES), help=f"comma-separated suites: {','.join(SUITES)}"
    )
    args = parser.parse_args()
    common.ROUNDS = args.rounds
    suites = [s for s in args.only.split(",") if s]
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite {', '.join(unknown)}: choose from {', '.join(SUITES)}")
    available = [s for s in suites if importlib.util.find_spec(f"benchmarks.{s}_cases")]
    asyncio.run(main(args.count, available))
