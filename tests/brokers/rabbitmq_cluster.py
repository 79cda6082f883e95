"""A private three-node RabbitMQ cluster for the tests, beside (never touching) the machine's node.

Each node runs RabbitMQ's own ``sbin/rabbitmq-server`` with an environment of its own: node name,
AMQP and distribution ports, data, log, config and plugin files in a temporary directory, an
``epmd`` of the cluster on a private port, and a ``HOME`` holding the cluster's own Erlang cookie.
The first node boots alone; the other two join it at boot (classic-config peer discovery). Stop
everything with ``remove()``: only the processes the cluster started are killed, by their PIDs.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.backends import unavailable
from tests.brokers.nats import free_port, reachable

SBIN = sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin"))
"""RabbitMQ's own scripts (not the ``/usr/sbin`` wrappers, which switch to the system's user and
cookie)."""

BOOT_TIMEOUT = 90.0


def started_cluster(size: int = 3) -> RabbitCluster:
    """A started cluster of ``size`` nodes; started a second time from nothing if a node did not
    start (a loaded box can cause it). ``unavailable`` (skip, or fail when brokers are required)
    if that fails too."""
    failure: Exception | None = None
    for _ in range(2):
        cluster = RabbitCluster(size=size)
        try:
            cluster.start()  # kills what it started if it fails
            return cluster
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            failure = exc
    unavailable(f"cannot start RabbitMQ ({size} node(s)): {failure}")
    raise failure or RuntimeError  # unavailable() skips or fails the test: never reached


@dataclass
class Node:
    """One node of the cluster: its name, ports, directory and process."""

    name: str
    amqp_port: int
    dist_port: int
    home: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.amqp_port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "pid"

    def beam_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None


@dataclass
class RabbitCluster:
    """``size`` RabbitMQ nodes of the tests (three by default) on loopback ports; ``url`` names
    them all."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pigeon-rmq-")))
    nodes: list[Node] = field(default_factory=list)
    epmd: subprocess.Popen[bytes] | None = None
    epmd_port: int = 0
    size: int = 3

    def __post_init__(self) -> None:
        (self.root / ".erlang.cookie").write_text(secrets.token_hex(16))
        os.chmod(self.root / ".erlang.cookie", 0o400)
        tag = f"{os.getpid()}{secrets.token_hex(2)}"
        for index in range(self.size):
            home = self.root / f"n{index}"
            home.mkdir()
            self.nodes.append(Node(f"p{index}x{tag}@localhost", free_port(), free_port(), home))
        self.epmd_port = free_port()

    @property
    def url(self) -> str:
        """``amqp://guest:guest@<node 1>,<node 2>,<node 3>/``: the form users write."""
        return "amqp://guest:guest@" + ",".join(node.host for node in self.nodes) + "/"

    def url_from(self, first: Node) -> str:
        """The cluster's URL with ``first`` first (pair it with ``dont_randomize=True``)."""
        order = [first, *(node for node in self.nodes if node is not first)]
        return "amqp://guest:guest@" + ",".join(node.host for node in order) + "/"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start epmd and the three nodes; returns once all three are one cluster. On any
        failure every process started so far is killed before the error goes on."""
        if not SBIN:
            raise RuntimeError("RabbitMQ is not installed (no rabbitmq_server-*/sbin)")
        try:
            self._start_all()
        except BaseException:
            self.remove()
            raise

    def _start_all(self) -> None:
        self.epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            env=self._env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.start_node(self.nodes[0])
        for node in self.nodes[1:]:
            self._launch(node)
        for node in self.nodes[1:]:
            self._await_boot(node)
        self._await_cluster()

    def start_node(self, node: Node) -> None:
        """(Re)start ``node``; returns once it serves AMQP (a restarted node rejoins by itself)."""
        self._launch(node)
        self._await_boot(node)

    def wipe(self, node: Node) -> None:
        """Kill ``node`` and start it again without its data: a new, empty broker at its address
        (a container without its volume, a replaced machine). Only for a cluster of one."""
        assert self.size == 1, "a wiped node would not rejoin its cluster"
        self.kill(node)
        shutil.rmtree(node.home / "mnesia", ignore_errors=True)
        self.start_node(node)

    def kill(self, node: Node) -> None:
        """SIGKILL ``node`` (its Erlang VM, then the script that ran it)."""
        pid = node.beam_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process, node.process = node.process, None
        if process is not None:
            # the script runs the VM in the background: its whole process group (its own
            # session) goes, even before the VM wrote its pid file
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        node.pid_file.unlink(missing_ok=True)
        deadline = time.monotonic() + 10
        while reachable(node.url, 0.2) and time.monotonic() < deadline:
            time.sleep(0.05)

    def remove(self) -> None:
        """Kill every process of the cluster and delete its directories."""
        for node in self.nodes:
            self.kill(node)
        if self.epmd is not None:
            self.epmd.kill()
            self.epmd.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- queries -----------------------------------------------------------------------------

    def ctl(self, node: Node, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl -n <node> args`` on this cluster; its output."""
        command = [f"{SBIN[-1]}/rabbitmqctl", "-n", node.name, *args]
        done = subprocess.run(
            command, env=self._env(), capture_output=True, text=True, timeout=timeout, check=True
        )
        return done.stdout

    def leader_of(self, queue: str, vhost: str = "/") -> Node:
        """The node leading quorum queue ``queue``."""
        asked = next(node for node in self.nodes if node.process is not None)
        listing = self.ctl(asked, "list_queues", "-p", vhost, "-q", "name", "leader")
        for line in listing.splitlines():
            name, _, leader = line.strip().partition("\t")
            if name == queue:
                return next(node for node in self.nodes if node.name == leader.strip())
        raise LookupError(f"no quorum queue {queue!r} in the cluster")

    # -- internals ---------------------------------------------------------------------------

    def _env(self, node: Node | None = None) -> dict[str, str]:
        dist = "-kernel inet_dist_use_interface {127,0,0,1}"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CTL_ERL_ARGS": dist,
            "RABBITMQ_CTL_DIST_PORT_MIN": str(20000 + self.epmd_port % 20000),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(20000 + self.epmd_port % 20000 + 50),
            "RABBITMQ_CONF_ENV_FILE": str(self._file("rabbitmq-env.conf", "")),
        }
        if node is not None:
            env |= self._node_env(node, dist)
        return env

    def _node_env(self, node: Node, dist: str) -> dict[str, str]:
        seed = self.nodes[0].name
        config = "\n".join(
            [
                "loopback_users = none",
                "cluster_formation.peer_discovery_backend = classic_config",
                f"cluster_formation.classic_config.nodes.1 = {seed}",
                "disk_free_limit.absolute = 50MB",
                "",
            ]
        )
        return {
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_MNESIA_BASE": str(node.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.home / "log"),
            "RABBITMQ_PID_FILE": str(node.pid_file),
            "RABBITMQ_CONFIG_FILE": str(self._file(f"{node.home.name}.conf", config)),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self._file("advanced.config", "[].\n")),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self._file("enabled_plugins", "[].\n")),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": dist,
        }

    def _file(self, name: str, text: str) -> Path:
        path = self.root / name
        if not path.exists():
            path.write_text(text)
        return path

    def _launch(self, node: Node) -> None:
        with (node.home / "server.out").open("ab") as log:
            node.process = subprocess.Popen(
                [f"{SBIN[-1]}/rabbitmq-server"],
                env=self._env(node),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the tests is not sent to the nodes
            )

    def _await_boot(self, node: Node) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not reachable(node.url, 0.2):
            if node.process is None or node.process.poll() is not None:
                raise RuntimeError(f"RabbitMQ node {node.name} exited; see {node.home}/log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ node {node.name} did not start in {BOOT_TIMEOUT}s")
            time.sleep(0.1)
        self.ctl(node, "await_startup", timeout=BOOT_TIMEOUT)

    def _await_cluster(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            status = self.ctl(self.nodes[0], "cluster_status", "--formatter", "json")
            if all(status.count(node.name) >= 2 for node in self.nodes):  # disk and running
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the RabbitMQ nodes did not form a cluster: {status}")
            time.sleep(0.2)
