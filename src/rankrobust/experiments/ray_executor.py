"""The Ray executor: tasks on a Ray cluster (``--address``) or on a local Ray it starts itself.

Ray is imported only here, and only when a :class:`RayExecutor` is made. What it guarantees:

- **Connect before anything is written.** :func:`check_ray_address` answers in seconds for an
  address where no Ray listens; :func:`check_ray_auth` tells a cluster that wants a token
  (``RAY_AUTH_MODE=token``) from a driver without it, in one line naming Ray's settings.
- **A run lost to a dead node or worker is not a failed run.** Tasks run with Ray's
  ``max_retries=0``; a task whose node or worker died (``NodeDiedError``, ``WorkerCrashedError``,
  ``OutOfMemoryError``, a lost result) comes back as a result with ``lost=True`` and the sweep runs
  it again, on the nodes still alive. A run that *raised* comes back as an ordinary failed result
  (``execute_run`` never raises). One notice per lost node.
- **A cluster that goes away is noticed in seconds.** ``wait`` polls every
  :data:`POLL_SECONDS` and checks that the cluster's GCS still answers; a GCS silent for
  :data:`GONE_SECONDS`, or a driver whose local raylet died (``ray stop``), raises
  :class:`~rankrobust.experiments.executors.ClusterLostError` (the sweep returns the runs in flight
  to *pending*). A lost task is checked against this first: under ``ray stop`` the workers die
  before the GCS does, and their runs are not "lost with a node".
- **The cluster may grow.** ``capacity`` is re-read from the cluster's CPUs (every
  :data:`RESOURCE_SECONDS`): :data:`WINDOW` tasks per CPU are handed to Ray, so a node that
  joins gets queued tasks at once, and an autoscaler sees the demand.
- **Quiet.** Ray's driver prints every cluster error event (a dead raylet's last 20 log lines)
  from a background thread; a driver this executor started keeps them to Ray's log files.

Each result records the Ray node id that ran it (``node``) and the worker's pid.
"""

from __future__ import annotations

import math
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from rankrobust.errors import ConfigError
from rankrobust.experiments.config import RunConfig
from rankrobust.experiments.executors import ClusterLostError, Executor, init_worker
from rankrobust.experiments.grid import run_id
from rankrobust.experiments.run import RunResult, execute_run, failed_result

PROBE_SECONDS = 5.0  # how long to try to reach a Ray cluster's port before giving up
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4, the client's first bytes
HTTP2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS frame, stream 0
POLL_SECONDS = 1.0  # wait() returns at least this often, so capacity and liveness are re-read
GONE_SECONDS = 3.0  # a GCS silent this long: the cluster went away
RESOURCE_SECONDS = 2.0  # how long a read of the cluster's CPUs is reused
NODE_DIED = re.compile(r"Node IP: (?P<ip>[^,\s]+), node ID: (?P<node>[0-9a-f]+)")  # NodeDiedError's text
WINDOW = 2  # tasks handed to Ray per CPU of the cluster (the rest wait in the driver)
AUTH_HELP = ("set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or in a file "
             "named by RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token); `ray get-auth-token` on the "
             "head prints it")


def check_ray_address(address: str, timeout: float = PROBE_SECONDS) -> None:
    """ConfigError (one line, within ``timeout`` seconds) unless the Ray ``address``
    (``HOST:PORT`` or ``ray://HOST:PORT``; ``auto`` is left to Ray) accepts a TCP connection and
    answers like a gRPC server (:func:`speaks_http2`): Ray's GCS and its client server are both
    gRPC, i.e. HTTP/2.

    ``ray.init`` on an unreachable address, or on a port where something else listens (an HTTP
    server, a silent socket), retries for minutes and ignores SIGTERM meanwhile, so the address
    is probed first. With ``RAY_USE_TLS`` set the cluster speaks TLS first, so only the TCP
    connection is checked.
    """
    if address in ("auto", "local"):
        return
    host, port = split_address(address)
    try:
        answered = speaks_http2(host, port, timeout, handshake=not _tls())
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConfigError(f"--address {address}: cannot reach a Ray cluster ({reason})") from None
    if not answered:
        raise ConfigError(f"--address {address}: the port answers but is not a Ray cluster (GCS): "
                          f"no HTTP/2 (gRPC) reply within {timeout:g} s")


def split_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT``, ``ray://HOST:PORT`` or ``[::1]:PORT``; ConfigError else."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port_text = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"--address {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379) or 'auto'")
    return host, int(port_text)


def _tls() -> bool:
    return os.environ.get("RAY_USE_TLS", "0").strip().lower() in ("1", "true")


def speaks_http2(host: str, port: int, timeout: float = PROBE_SECONDS, handshake: bool = True) -> bool:
    """Whether ``host:port`` answers the HTTP/2 client preface with a SETTINGS frame, all
    within ``timeout`` seconds from the start (connection included).

    Sends the client preface (:data:`HTTP2_PREFACE`) and an empty SETTINGS frame, then
    reads the first frame header (9 bytes: length (3), type (1), flags (1), stream id (4)); a
    gRPC server's first frame is its SETTINGS (type 0x4) on stream 0 (RFC 9113 §3.4). False
    when the peer stays silent, closes, or sends anything else (an HTTP/1 server answers
    "HTTP/1.1 400 ..."); OSError (TimeoutError included) when no TCP connection opens in time.
    Without ``handshake`` only the TCP connection is checked.
    """
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if not handshake:
            return True
        header = b""
        try:
            sock.sendall(HTTP2_PREFACE + HTTP2_SETTINGS)
            while len(header) < 9:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                sock.settimeout(left)
                chunk = sock.recv(9 - len(header))
                if not chunk:  # closed by the peer
                    return False
                header += chunk
        except OSError:  # reset, or silent until the deadline
            return False
    return header[3] == 0x04 and int.from_bytes(header[5:9], "big") & 0x7FFFFFFF == 0


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null meanwhile: Ray's C++ client logs its own warnings there."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_ray_auth(address: str) -> None:
    """ConfigError (one line, in about a second) when the Ray cluster at ``address`` (GCS
    ``HOST:PORT``) wants token authentication that this driver does not give.

    Ray (≥ 2.5x) reads the driver's mode from ``RAY_AUTH_MODE`` and its token from
    ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``; one GCS client call tells
    whether the cluster accepts it. A Ray without token authentication is not checked (its
    ``ray.init`` failure is reported as is).
    """
    if "://" in address or address in ("auto", "local") or _tls():
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            ensure_token_if_auth_enabled,
        )
        from ray._raylet import GcsClient  # type: ignore[attr-defined]
        from ray.exceptions import AuthenticationError
    except ImportError:  # a Ray without token authentication
        return
    try:
        ensure_token_if_auth_enabled(None, create_token_if_missing=False)
    except AuthenticationError:
        raise ConfigError(f"--address {address}: RAY_AUTH_MODE=token but this driver has no "
                          f"Ray authentication token: {AUTH_HELP}") from None
    try:
        with quiet_stderr():
            GcsClient(address=address)
    except AuthenticationError:
        given = os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token"
        what = "refused this driver's token" if given else "requires token authentication"
        raise ConfigError(f"--address {address}: the Ray cluster {what} (Ray's RAY_AUTH_MODE): "
                          f"{AUTH_HELP}") from None
    except Exception:  # noqa: BLE001 - anything else is ray.init's to report
        return


def _ray_task(config: RunConfig) -> RunResult:
    """What a Ray worker runs: torch threads = the CPUs the run reserved; the result records the
    node that ran it."""
    import ray

    init_worker(max(1, int(config.resources.num_cpus)))
    result = execute_run(config)
    result.node = ray.get_runtime_context().get_node_id()
    return result


def _quiet_driver(ray: Any) -> None:
    """Ray's driver thread that prints every cluster error event to stdout prints nothing:
    the sweep reports lost nodes and a lost cluster itself, in one line each."""
    worker_module = getattr(getattr(ray, "_private", None), "worker", None)
    if worker_module is not None and hasattr(worker_module, "print_to_stdstream"):
        worker_module.print_to_stdstream = lambda data, ignore_prefix=False: None


class RayExecutor(Executor):
    """Ray tasks; joins ``address`` or starts a local Ray with ``local_cpus`` CPUs (see the
    module docstring)."""

    def __init__(self, address: str | None = None, local_cpus: int = 2) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray executor needs Ray: pip install 'rankrobust[ray]'") from None
        self._ray: Any = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            self._connect(address, local_cpus)
        self._where = address or "the local Ray"
        self._gcs = split_address(ray.get_runtime_context().gcs_address)
        self._task = ray.remote(_ray_task)
        self._refs: dict[Any, RunConfig] = {}
        self._cpus, self._read_at = 1, -RESOURCE_SECONDS
        self._dead: set[str] = set()  # the nodes reported dead
        self._lines: list[str] = []
        self._answered = time.monotonic()
        self._confirmed = -math.inf  # when the GCS was last seen answering through a loss
        self._lost_cluster = False

    def _connect(self, address: str | None, local_cpus: int) -> None:
        ray = self._ray
        if address:
            check_ray_address(address)
            check_ray_auth(address)
        common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": "ERROR", "configure_logging": True}
        try:
            if address:
                ray.init(address=address, **common)
            else:
                ray.init(num_cpus=local_cpus, object_store_memory=200 * 1024**2, **common)
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            auth = " (authentication: see Ray's RAY_AUTH_MODE)" if "auth" in first.lower() else ""
            raise ConfigError(f"cannot start Ray{f' at {address}' if address else ''}: "
                              f"{first}{auth}") from None
        _quiet_driver(ray)

    @property
    def capacity(self) -> int:
        """:data:`WINDOW` tasks per CPU of the cluster now (re-read every
        :data:`RESOURCE_SECONDS`), at least 1."""
        # a GCS call to a GCS that died blocks for a minute: probe the port first
        if time.monotonic() - self._read_at >= RESOURCE_SECONDS and self._gcs_answers():
            with suppress(Exception):  # the GCS is away: wait() tells
                self._cpus = max(1, int(self._ray.cluster_resources().get("CPU", 1)))
            self._read_at = time.monotonic()
        return WINDOW * self._cpus

    def submit(self, config: RunConfig) -> None:
        ref = self._task.options(num_cpus=config.resources.num_cpus,
                                 num_gpus=config.resources.num_gpus,
                                 max_retries=0).remote(config)
        self._refs[ref] = config

    def notices(self) -> list[str]:
        lines, self._lines = self._lines, []
        return lines

    def wait(self) -> list[RunResult]:
        if not self._refs:
            return []
        try:
            ready, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=POLL_SECONDS)
        except (OSError, self._ray.exceptions.RayError) as exc:  # the link to the cluster broke
            raise self._gone(f"{type(exc).__name__} while waiting for results") from None
        if not ready:
            self._check_alive()
            return []
        results: list[RunResult] = []
        for ref in ready:
            config = self._refs.pop(ref)
            try:
                results.append(self._ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - NodeDiedError, WorkerCrashedError, ...
                results.append(self._lost_or_failed(config, exc))
        return results

    def _lost_or_failed(self, config: RunConfig, exc: Exception) -> RunResult:
        """The result of a run whose task raised ``exc`` in Ray: lost (its node or worker died),
        or failed; ClusterLostError when the whole cluster went away."""
        ex = self._ray.exceptions
        if isinstance(exc, ex.LocalRayletDiedError):
            raise self._gone("the raylet this driver is connected to stopped")
        lost_types = tuple(getattr(ex, name) for name in (
            "NodeDiedError", "WorkerCrashedError", "OutOfMemoryError", "ObjectLostError")
            if hasattr(ex, name))
        lost = isinstance(exc, lost_types)
        if lost:
            self._confirm_alive()  # a worker lost to `ray stop` dies before its GCS does
            self._note_loss(config, exc)
        result = failed_result(run_id(config), exc)
        result.lost = lost
        return result

    def _note_loss(self, config: RunConfig, exc: Exception) -> None:
        """One notice per node that died (named by Ray's NodeDiedError: its id and IP); one
        per lost run otherwise."""
        found = NODE_DIED.search(str(exc))
        if found is None:
            self._lines.append(f"ray: the worker running {run_id(config)} died ({type(exc).__name__}); "
                               "the run goes back to the queue")
        elif found["node"] not in self._dead:
            self._dead.add(found["node"])
            self._lines.append(f"ray: node {found['node'][:12]} ({found['ip']}) died; the runs "
                               "it held go to the nodes still alive")

    def _gcs_answers(self) -> bool:
        try:
            return speaks_http2(*self._gcs, timeout=1.0, handshake=not _tls())
        except OSError:
            return False

    def _confirm_alive(self) -> None:
        """ClusterLostError when the GCS falls silent for :data:`GONE_SECONDS`; returns once
        it still answers :data:`GONE_SECONDS` after now. Checked at most once per
        3 × :data:`GONE_SECONDS`: the losses of one dying node share one check."""
        start = time.monotonic()
        if start - self._confirmed < 3 * GONE_SECONDS:
            return
        answered = start
        while answered - start < GONE_SECONDS:
            if self._gcs_answers():
                answered = time.monotonic()
            elif time.monotonic() - answered >= GONE_SECONDS:
                raise self._gone(f"its GCS at {self._gcs[0]}:{self._gcs[1]} does not answer")
            time.sleep(0.25)
        self._confirmed = time.monotonic()

    def _check_alive(self) -> None:
        """ClusterLostError when the GCS has not answered for :data:`GONE_SECONDS`."""
        if self._gcs_answers():
            self._answered = time.monotonic()
        elif time.monotonic() - self._answered >= GONE_SECONDS:
            raise self._gone(f"its GCS at {self._gcs[0]}:{self._gcs[1]} does not answer")

    def _gone(self, why: str) -> ClusterLostError:
        self._lost_cluster = True
        return ClusterLostError(f"the Ray cluster ({self._where}) went away ({why})")

    def close(self) -> None:
        if self._refs and not self._lost_cluster:
            for ref in self._refs:
                self._ray.cancel(ref, force=True)
        self._refs.clear()
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns = False
