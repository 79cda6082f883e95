"""Message ids stay unique when a process forks after importing pigeon (``gunicorn --preload``,
``os.fork``): JetStream drops a second message with the same ``Nats-Msg-Id`` as a duplicate."""

from __future__ import annotations

import subprocess
import sys

FORKING = """
import os
from pigeon.message import new_id
before = [new_id() for _ in range(10)]  # a batch is being handed out when the fork comes
read, write = os.pipe()
child = os.fork()
if child == 0:
    os.close(read)
    os.write(write, " ".join(new_id() for _ in range(600)).encode())
    os._exit(0)
os.close(write)
parent_ids = {new_id() for _ in range(600)}
data = b""
while chunk := os.read(read, 65536):
    data += chunk
os.waitpid(child, 0)
child_ids = set(data.decode().split())
print(len(child_ids), len(parent_ids & child_ids), len(set(before) & child_ids))
"""


def test_a_forked_child_makes_ids_of_its_own() -> None:
    # a fresh interpreter: forking the test process (threads running) would warn and may hang
    done = subprocess.run(
        [sys.executable, "-c", FORKING], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["600", "0", "0"]
