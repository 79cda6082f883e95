"""Apps the scenarios serve with ``pigeon run reliability.services.<module>:app``.

Each reads its broker from ``PIGEON_URL`` and the App options of the run (queue settings, which
every App of a queue must share) from ``RELIABILITY_OPTIONS`` (JSON), its subjects from
``RELIABILITY_QUEUE`` / ``RELIABILITY_SUBJECT``, and appends one line per handled message to the
file ``RELIABILITY_DONE``, which is how a scenario counts what was processed and how often.
"""

from __future__ import annotations

import json
import os

from pigeon import App


def service_app() -> App:
    """The service's App: ``PIGEON_URL`` (so ``pigeon run --url`` works), the run's options."""
    return App(**json.loads(os.environ.get("RELIABILITY_OPTIONS", "{}")))


def setting(name: str, default: str) -> str:
    """``RELIABILITY_<NAME>`` from the environment, else ``default``."""
    return os.environ.get(f"RELIABILITY_{name}", default)


class DoneLog:
    """Appends one line per handled message to the run's done file.

    Each line is one ``write`` on a file opened with ``O_APPEND``: lines of concurrent worker
    processes never mix, and a line written is on file even if the process is killed next.
    """

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, line: object) -> None:
        os.write(self._fd, f"{line}\n".encode())
