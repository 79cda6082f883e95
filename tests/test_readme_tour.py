"""The README's tour is a script that runs as written (on the memory transport)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("## A tour\n\n```python\n", 1)[1].split("```\n", 1)[0]
    script = tmp_path / "tour.py"
    script.write_text(tour)
    env = {k: v for k, v in os.environ.items() if k != "PIGEON_URL"}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "left: 1" in lines
    assert "refused: LookupError only 3 left" in lines
    # what handlers print is not asserted: the tour's short pause before closing is for show
