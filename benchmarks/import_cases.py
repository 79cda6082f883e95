"""``import pigeon`` beside its floor (asyncio and pydantic) and FastStream, each in a new process.

Every command runs ``RUNS`` times, interleaved, in a fresh interpreter; the table gives the median
milliseconds over ``python -c pass`` in the same run. Bytecode is compiled first, into a private
cache (``PYTHONPYCACHEPREFIX``), as a pip install compiles it: no run pays for compiling. (The
tests' environment here sets ``PYTHONDONTWRITEBYTECODE=1``, under which an editable install
compiles every pigeon module again on each import.) ``--count`` is ignored.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.common import Result

RUNS = 21
"""Fresh interpreters per command."""

CASE = "import, ms over `python -c pass`"
COMMANDS = {
    "pigeon": "import pigeon",
    "asyncio, pydantic": "import asyncio; from pydantic import BaseModel",
    "FastStream": "from faststream import FastStream",
}


def _seconds(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - started


def measure(runs: int = RUNS) -> list[Result]:
    """Median wall-clock milliseconds of each command over ``python -c pass``."""
    with tempfile.TemporaryDirectory(prefix="pigeon-bench-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        commands = {"python -c pass": "pass", **COMMANDS}
        for code in commands.values():  # compiles each module once, into the cache
            _seconds(code, env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, code in commands.items():
                samples[name].append(_seconds(code, env))
    floor = statistics.median(samples.pop("python -c pass"))
    return [
        Result(CASE, name, (statistics.median(times) - floor) * 1000, "ms")
        for name, times in samples.items()
    ]


async def run(count: int) -> list[Result]:
    return await asyncio.to_thread(measure)
