"""Executors run :func:`~rankrobust.experiments.run.execute_runs` and hand results back.

A *task* is a list of run configs: one run, or runs that train together as one stacked model
(``rankrobust sweep --stack``). All executors share one small interface the sweep driver uses::

    ex.capacity            # how many tasks may be in flight at once
    ex.submit(configs)     # start a task (returns at once, except for the sequential executor)
    ex.wait() -> results   # block until at least one task finished; the RunResults of its runs
    ex.close()

- :class:`SequentialExecutor`: in this process, one run at a time (tests, debugging);
- :class:`ProcessPoolExecutor`: N worker processes ("spawn" start method, one torch thread each);
- :class:`RayExecutor`: Ray tasks with per-run ``num_cpus``/``num_gpus``, on an existing cluster
  (``address``) or a local Ray it starts (and stops) itself.

Workers only compute; a crashed worker becomes a failed RunResult per run of its task, never a
lost run.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import torch

from rankrobust.errors import ConfigError
from rankrobust.experiments.config import RunConfig
from rankrobust.experiments.grid import run_id
from rankrobust.experiments.run import RunResult, execute_runs, failed_result

EXECUTORS = ("local", "ray")
PROBE_SECONDS = 5.0  # how long to try to reach a Ray cluster's port before giving up
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4, the client's first bytes
HTTP2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS frame, stream 0


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
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port_text = rest.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"--address {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379) or 'auto'")
    tls = os.environ.get("RAY_USE_TLS", "0").strip().lower() in ("1", "true")
    try:
        answered = speaks_http2(host, int(port_text), timeout, handshake=not tls)
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConfigError(f"--address {address}: cannot reach a Ray cluster ({reason})") from None
    if not answered:
        raise ConfigError(f"--address {address}: the port answers but is not a Ray cluster (GCS): "
                          f"no HTTP/2 (gRPC) reply within {timeout:g} s")


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


class Executor:
    """Base class: see the module docstring."""

    capacity: int = 1

    def submit(self, configs: Sequence[RunConfig]) -> None:
        raise NotImplementedError

    def wait(self) -> list[RunResult]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (idempotent)."""


class SequentialExecutor(Executor):
    """Runs each submitted task in this process when ``wait`` is called."""

    capacity = 1

    def __init__(self) -> None:
        self._queue: list[list[RunConfig]] = []

    def submit(self, configs: Sequence[RunConfig]) -> None:
        self._queue.append(list(configs))

    def wait(self) -> list[RunResult]:
        if not self._queue:
            return []
        return execute_runs(self._queue.pop(0))


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


class ProcessPoolExecutor(Executor):
    """``workers`` spawned processes; each run in a fresh-enough process with ``threads`` threads."""

    def __init__(self, workers: int, threads: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be ≥ 1, got {workers}")
        self.capacity = workers
        self._threads = threads
        self._futures: dict[cf.Future[list[RunResult]], list[str]] = {}
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self.capacity, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(self._threads,),
        )

    def submit(self, configs: Sequence[RunConfig]) -> None:
        task = list(configs)
        try:
            future = self._pool.submit(execute_runs, task)
        except cf.BrokenExecutor:  # a worker died earlier: start a new pool
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            future = self._pool.submit(execute_runs, task)
        self._futures[future] = [run_id(c) for c in task]

    def wait(self) -> list[RunResult]:
        if not self._futures:
            return []
        done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        results = []
        for future in done:
            rids = self._futures.pop(future)
            try:
                results += future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. BrokenProcessPool: worker killed
                results += [failed_result(rid, exc) for rid in rids]
        return results

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _ray_task(configs: list[RunConfig]) -> list[RunResult]:
    """What a Ray worker runs: torch threads = the CPUs the task reserved."""
    _init_worker(max(1, int(max(c.resources.num_cpus for c in configs))))
    return execute_runs(configs)


class RayExecutor(Executor):
    """Ray tasks; joins ``address`` or starts a local Ray with ``local_cpus`` CPUs."""

    def __init__(self, address: str | None = None, local_cpus: int = 2) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "the ray executor needs Ray: pip install 'rankrobust[ray]'"
            ) from None
        self._ray: Any = ray
        self._owns = not ray.is_initialized()
        if self._owns and address:
            check_ray_address(address)
        if self._owns:
            common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "logging_level": "ERROR", "configure_logging": True}
            try:
                if address:
                    ray.init(address=address, **common)
                else:
                    ray.init(num_cpus=local_cpus, object_store_memory=200 * 1024**2, **common)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                first = (str(exc).strip().splitlines() or [""])[0]
                raise ConfigError(f"cannot start Ray{f' at {address}' if address else ''}: {first}") from None
        self.capacity = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._task = ray.remote(_ray_task)
        self._refs: dict[Any, list[str]] = {}

    def submit(self, configs: Sequence[RunConfig]) -> None:
        task = list(configs)  # a stack asks for what its most demanding run asks
        ref = self._task.options(num_cpus=max(c.resources.num_cpus for c in task),
                                 num_gpus=max(c.resources.num_gpus for c in task),
                                 max_retries=0).remote(task)
        self._refs[ref] = [run_id(c) for c in task]

    def wait(self) -> list[RunResult]:
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=1)
        results = []
        for ref in ready:
            rids = self._refs.pop(ref)
            try:
                results += self._ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - RayTaskError, WorkerCrashedError, ...
                results += [failed_result(rid, exc) for rid in rids]
        return results

    def close(self) -> None:
        if self._refs:
            for ref in self._refs:
                self._ray.cancel(ref, force=True)
            self._refs.clear()
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns = False


def make_executor(kind: str = "local", workers: int = 1, address: str | None = None) -> Executor:
    """``local`` with 1 worker: sequential in-process; N > 1: a process pool; ``ray``: Ray tasks."""
    if kind == "local":
        if address:
            raise ConfigError("--address applies to --executor ray only")
        if workers < 1:
            raise ConfigError(f"--workers must be ≥ 1, got {workers}")
        return SequentialExecutor() if workers == 1 else ProcessPoolExecutor(workers)
    if kind == "ray":
        return RayExecutor(address, local_cpus=max(2, workers))
    raise ConfigError(f"unknown executor {kind!r}; choose from {', '.join(EXECUTORS)}")
