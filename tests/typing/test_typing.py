"""The type checker agrees with the public API's promises (``request_types.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent  # mypy finds the editable pigeon from the project's root


def mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


@pytest.mark.timeout(180)
def test_request_and_composition_types_check() -> None:
    result = mypy(HERE / "request_types.py")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(180)
def test_a_wrong_reply_type_is_caught(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "from pigeon import App\n"
        "async def f(app: App) -> None:\n"
        "    n: str = await app.request('x', 1, reply=int)\n"
    )
    result = mypy(wrong)
    assert result.returncode == 1, result.stdout
    assert 'has incompatible type "type[int]"; expected "type[str]"' in result.stdout
