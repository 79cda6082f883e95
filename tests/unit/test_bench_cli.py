"""The benchmark runner refuses a suite it does not know (a typo printed an empty table and
exited 0)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_an_unknown_suite_is_refused_naming_the_known_ones() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--only", "nat", "--count", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "unknown suite nat: choose from memory, codec, nats" in run.stderr
