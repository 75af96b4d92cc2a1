"""Executors run :func:`~rankrobust.experiments.run.execute_run` and hand results back.

A *task* is one run config. All executors share one small interface the sweep driver uses::

    ex.capacity            # how many runs may be in flight now (re-read before each submit)
    ex.submit(config)      # start a run (returns at once, except for the sequential executor)
    ex.wait() -> results   # the RunResults of runs that finished; may be [] after a poll interval
    ex.notices() -> lines  # what a user should read about the cluster since the last call
    ex.close()

- :class:`SequentialExecutor`: in this process, one run at a time (tests, debugging);
- :class:`ProcessPoolExecutor`: N worker processes ("spawn" start method, one torch thread each);
- :class:`~rankrobust.experiments.ray_executor.RayExecutor`: Ray tasks on an existing cluster
  or a local Ray (imported only when asked for: the local executors never import Ray).

Workers only compute; a crashed worker becomes a failed RunResult of its run, never a lost
run. A result with ``lost=True`` did not fail: its node or worker went away, and the sweep
may run it again (:data:`~rankrobust.experiments.sweep.MAX_ATTEMPTS`). A cluster that goes away
as a whole raises :class:`ClusterLostError` from ``wait``.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from contextlib import suppress

import torch

from rankrobust.errors import ConfigError, RankRobustError
from rankrobust.experiments.config import RunConfig
from rankrobust.experiments.grid import run_id
from rankrobust.experiments.run import RunResult, execute_run, failed_result

EXECUTORS = ("local", "ray")


class ClusterLostError(RankRobustError):
    """The cluster the runs were handed to went away as a whole (its head stopped or died)."""


class Executor:
    """Base class: see the module docstring."""

    @property
    def capacity(self) -> int:
        return 1

    def notices(self) -> list[str]:
        """Lines for the user about the workers (a lost node, ...) since the last call."""
        return []

    def submit(self, config: RunConfig) -> None:
        raise NotImplementedError

    def wait(self) -> list[RunResult]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (idempotent)."""

    def abort(self) -> None:
        """Release workers without waiting for the runs they hold (the driver is stopping on an
        interrupt; those runs are back to pending). Default: :meth:`close`."""
        self.close()


class SequentialExecutor(Executor):
    """Runs each submitted run in this process when ``wait`` is called."""

    def __init__(self) -> None:
        self._queue: list[RunConfig] = []

    def submit(self, config: RunConfig) -> None:
        self._queue.append(config)

    def wait(self) -> list[RunResult]:
        if not self._queue:
            return []
        return [execute_run(self._queue.pop(0))]


def init_worker(threads: int) -> None:
    """Worker process setup: ``threads`` torch threads."""
    torch.set_num_threads(threads)


class ProcessPoolExecutor(Executor):
    """``workers`` spawned processes; each run in a fresh-enough process with ``threads`` threads."""

    def __init__(self, workers: int, threads: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be ≥ 1, got {workers}")
        self._workers = workers
        self._threads = threads
        self._futures: dict[cf.Future[RunResult], str] = {}
        self._pool = self._new_pool()

    @property
    def capacity(self) -> int:
        return self._workers

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker, initargs=(self._threads,),
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

    def abort(self) -> None:
        # the pool offers no way to stop a running task before Python 3.14's terminate_workers
        processes = dict(getattr(self._pool, "_processes", None) or {})
        for process in processes.values():
            with suppress(Exception):
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_executor(kind: str = "local", workers: int = 1, address: str | None = None) -> Executor:
    """``local`` with 1 worker: sequential in-process; N > 1: a process pool; ``ray``: Ray tasks."""
    if kind == "local":
        if address:
            raise ConfigError("--address applies to --executor ray only")
        if workers < 1:
            raise ConfigError(f"--workers must be ≥ 1, got {workers}")
        return SequentialExecutor() if workers == 1 else ProcessPoolExecutor(workers)
    if kind == "ray":
        from rankrobust.experiments.ray_executor import RayExecutor  # imports Ray

        return RayExecutor(address, local_cpus=max(2, workers))
    raise ConfigError(f"unknown executor {kind!r}; choose from {', '.join(EXECUTORS)}")
