"""Executors run :func:`~rankrobust.experiments.run.execute_run` and hand results back.

All share one small interface the sweep driver uses::

    ex.capacity            # how many runs may be in flight at once
    ex.submit(config)      # start a run (returns at once, except for the sequential executor)
    ex.wait() -> results   # block until at least one in-flight run finished; its RunResults
    ex.close()

- :class:`SequentialExecutor`: in this process, one run at a time (tests, debugging);
- :class:`ProcessPoolExecutor`: N worker processes ("spawn" start method, one torch thread each);
- :class:`RayExecutor`: Ray tasks with per-run ``num_cpus``/``num_gpus``, on an existing cluster
  (``address``) or a local Ray it starts (and stops) itself.

Workers only compute; a crashed worker becomes a failed RunResult, never a lost run.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import socket
from typing import Any

import torch

from rankrobust.errors import ConfigError
from rankrobust.experiments.config import RunConfig
from rankrobust.experiments.grid import run_id
from rankrobust.experiments.run import RunResult, execute_run, failed_result

EXECUTORS = ("local", "ray")
PROBE_SECONDS = 5.0  # how long to try to reach a Ray cluster's port before giving up


def check_ray_address(address: str, timeout: float = PROBE_SECONDS) -> None:
    """ConfigError (one line, within ``timeout`` seconds) unless a TCP connection to the Ray
    ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``; ``auto`` is left to Ray) can be opened.

    ``ray.init`` on an unreachable address retries for minutes and ignores SIGTERM meanwhile,
    so the address is probed first.
    """
    if address in ("auto", "local"):
        return
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port_text = rest.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"--address {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379) or 'auto'")
    try:
        with socket.create_connection((host, int(port_text)), timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConfigError(f"--address {address}: cannot reach a Ray cluster ({reason})") from None


class Executor:
    """Base class: see the module docstring."""

    capacity: int = 1

    def submit(self, config: RunConfig) -> None:
        raise NotImplementedError

    def wait(self) -> list[RunResult]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (idempotent)."""


class SequentialExecutor(Executor):
    """Runs each submitted config in this process when ``wait`` is called."""

    capacity = 1

    def __init__(self) -> None:
        self._queue: list[RunConfig] = []

    def submit(self, config: RunConfig) -> None:
        self._queue.append(config)

    def wait(self) -> list[RunResult]:
        if not self._queue:
            return []
        return [execute_run(self._queue.pop(0))]


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


class ProcessPoolExecutor(Executor):
    """``workers`` spawned processes; each run in a fresh-enough process with ``threads`` threads."""

    def __init__(self, workers: int, threads: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be ≥ 1, got {workers}")
        self.capacity = workers
        self._threads = threads
        self._futures: dict[cf.Future[RunResult], str] = {}
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self.capacity, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(self._threads,),
        )

    def submit(self, config: RunConfig) -> None:
        try:
            future = self._pool.submit(execute_run, config)
        except cf.BrokenExecutor:  # a worker died earlier: start a new pool
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            future = self._pool.submit(execute_run, config)
        self._futures[future] = run_id(config)

    def wait(self) -> list[RunResult]:
        if not self._futures:
            return []
        done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        results = []
        for future in done:
            rid = self._futures.pop(future)
            try:
                results.append(future.result())
            except Exception as exc:  # noqa: BLE001 - e.g. BrokenProcessPool: worker killed
                results.append(failed_result(rid, exc))
        return results

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _ray_task(config: RunConfig) -> RunResult:
    """What a Ray worker runs: torch threads = the CPUs the task reserved."""
    _init_worker(max(1, int(config.resources.num_cpus)))
    return execute_run(config)


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
        self._refs: dict[Any, str] = {}

    def submit(self, config: RunConfig) -> None:
        res = config.resources
        ref = self._task.options(num_cpus=res.num_cpus, num_gpus=res.num_gpus,
                                 max_retries=0).remote(config)
        self._refs[ref] = run_id(config)

    def wait(self) -> list[RunResult]:
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=1)
        results = []
        for ref in ready:
            rid = self._refs.pop(ref)
            try:
                results.append(self._ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - RayTaskError, WorkerCrashedError, ...
                results.append(failed_result(rid, exc))
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
