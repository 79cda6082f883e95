"""The documentation site builds with ``mkdocs build --strict``: no broken link, no public name
without a docstring, and the API reference lists every name of ``pigeon.__all__``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pigeon

ROOT = Path(__file__).parents[2]
MKDOCS = Path(sys.executable).parent / "mkdocs"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    reference = (tmp_path / "site/reference/index.html").read_text()
    for name in pigeon.__all__:
        assert f'id="pigeon.{name}"' in reference, f"{name} is missing from the API reference"
    assert (tmp_path / "site/images/asyncapi-shop.png").exists()
