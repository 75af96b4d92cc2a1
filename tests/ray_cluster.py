"""A real multi-node Ray cluster on this machine, for the tests of ``test_ray_cluster.py``.

Each node is one ``ray start --block`` process (the commands of the README), started in its own
process group with free ports and a private temp dir, so that a test never touches another Ray on
the machine (``ray stop`` would stop them all: a graceful stop is SIGTERM to this cluster's
processes only, as ``ray stop`` sends). Every process is killed when the fixture ends, failed or
not.

Runs can be held at a *gate*: the nodes start with Ray's worker setup hook set to
:func:`ray_gate.setup`, which makes each task touch ``started.<run id>.<node id>.<pid>`` in the
gate folder and wait until ``open`` appears there. A test thus kills a node while a run is on
it, by construction and not by timing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
TESTS = Path(__file__).resolve().parent
LIST_NODES = """
import sys
from ray._raylet import GcsClient
from ray.core.generated.gcs_pb2 import GcsNodeInfo
nodes = GcsClient(address=sys.argv[1]).get_all_node_info(timeout=10)
print(",".join(k.hex() for k, v in nodes.items() if v.state == GcsNodeInfo.GcsNodeState.ALIVE))
"""
START_SECONDS = 120.0  # how long a node may take to start on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], seconds: float) -> None:
    """Poll ``check`` every 0.1 s; AssertionError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {seconds:g} s waiting for {what}")
        time.sleep(0.1)


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (Linux /proc), parents first."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parent.items() if ppid in frontier]
        found += frontier
    return found


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@dataclass
class Node:
    proc: subprocess.Popen[bytes]
    log: Path
    node_id: str = ""

    def pid_of(self, name: str) -> int:
        """The pid of this node's process called ``name`` (e.g. raylet, gcs_server)."""
        for pid in descendants(self.proc.pid):
            if command_name(pid) == name:
                return pid
        raise AssertionError(f"no {name} process in node {self.node_id or self.proc.pid}")


class Cluster:
    """A head and worker nodes started with ``ray start``; see the module docstring."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rr-ray-", dir="/tmp"))  # short: socket paths
        self.gate = self.root / "gate"
        self.gate.mkdir()
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[Node] = []
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
                    "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
                    "OMP_NUM_THREADS": "1", "RR_TEST_GATE": str(self.gate),
                    "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR": "ray_gate.setup", **(env or {})}

    def start(self, head: bool = False, cpus: int = 1) -> Node:
        """Start a node and wait until it has registered; returns it with its node id."""
        where = (["--head", "--port", str(self.port), "--dashboard-port", str(free_port()),
                  "--include-dashboard", "false",
                  "--temp-dir", str(self.root / "ray")] if head else ["--address", self.address])
        log = self.root / f"node{len(self.nodes)}.log"
        command = [RAY, "start", "--block", *where, "--num-cpus", str(cpus), "--node-ip-address",
                   "127.0.0.1", "--dashboard-agent-listen-port", str(free_port()),
                   "--object-store-memory", str(80 * 1024**2), "--disable-usage-stats"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                    start_new_session=True)
        node = Node(proc, log)
        self.nodes.append(node)
        before = set(self.alive_nodes())
        wait_for(f"node {len(self.nodes) - 1} to start ({log})",
                 lambda: proc.poll() is None and b"Ray runtime started" in log.read_bytes()
                 or proc.poll() is not None, START_SECONDS)
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        wait_for("the node to register", lambda: len(set(self.alive_nodes()) - before) == 1, 60)
        node.node_id = (set(self.alive_nodes()) - before).pop()
        return node

    def alive_nodes(self) -> list[str]:
        """The ids of the nodes the GCS lists as alive, [] while it does not answer."""
        if not self.nodes:
            return []
        done = subprocess.run([sys.executable, "-c", LIST_NODES, self.address],
                              capture_output=True, env=self.env, timeout=60)
        lines = done.stdout.decode().split()
        return [] if done.returncode or not lines else lines[-1].split(",")

    def started(self) -> list[tuple[str, str, int]]:
        """(run id, node id, worker pid) of every task that reached the gate, in no order."""
        found = []
        for path in self.gate.glob("started.*"):
            _, rid, node, pid = path.name.split(".")
            found.append((rid, node, int(pid)))
        return found

    def open_gate(self) -> None:
        (self.gate / "open").touch()

    def close_gate(self) -> None:
        """Hold the next runs again, and forget which runs started."""
        for path in self.gate.iterdir():
            path.unlink()

    def processes(self) -> list[int]:
        """Every live process of this cluster: those whose environment carries its gate folder
        (all that ``ray start`` spawned, workers included; Ray gives workers their own
        session, so process groups do not catch them)."""
        marker = f"RR_TEST_GATE={self.gate}".encode()
        found = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                if marker in environ.read_bytes().split(b"\0"):
                    found.append(int(environ.parent.name))
            except OSError:
                continue
        return [pid for pid in found if pid != os.getpid()]

    def stop(self) -> None:
        """What ``ray stop`` does, to this cluster only: SIGTERM to each of its processes."""
        for pid in self.processes():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def close(self) -> None:
        """SIGKILL every process of this cluster; remove its folder."""
        for _ in range(3):  # a dying raylet may still start a worker
            for pid in self.processes():
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        for node in self.nodes:
            node.proc.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)
