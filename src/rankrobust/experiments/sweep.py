"""The sweep driver: expand a study, skip what is done, run the rest, store every result.

Resume rules, per run id of the expanded study:

- ``complete``: skipped;
- ``pending`` or ``running`` (a driver was killed while it ran): run (again);
- ``failed``: skipped unless ``retry_failed``.

Only this driver writes the database, one transaction per state change, so killing it at any
moment loses at most the runs in flight, which the next sweep reruns. A run that raises or
diverges is stored as failed with its reason and the sweep goes on.

Runs are handed to the executor as its ``capacity`` allows, read again before each submit (a
Ray cluster that grows gets more). A run *lost* with its node or worker (not a failure of the
run) is queued again, at most :data:`MAX_ATTEMPTS` submits per session, then stored as failed.
When the loop ends early (the cluster went away, Ctrl-C) the runs in flight go back to
*pending*; a lost cluster is reported in one line that says how to resume.

Stopping on purpose (the end of a working session, a machine to hand back): send the driver
SIGTERM. It starts no new run, waits for the runs in flight and stores them, and returns with
the rest still *pending* (:attr:`SweepSummary.stopped`); a second SIGTERM stops at once, as
Ctrl-C does. The session's provenance record is saved after every stored run, so a driver
killed outright (SIGKILL, a machine taken away) still leaves its wall time up to its last run.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from rankrobust.data import dataset_info
from rankrobust.data.registry import SPLITS, load_dataset_numpy
from rankrobust.errors import ConfigError, DataError
from rankrobust.experiments.config import RunConfig
from rankrobust.experiments.estimate import run_work, study_work
from rankrobust.experiments.executors import ClusterLostError, Executor, make_executor
from rankrobust.experiments.grid import canonical_json, expand, run_id
from rankrobust.experiments.provenance import finish_record, session_record
from rankrobust.experiments.run import RunResult, failed_result, utc_now
from rankrobust.experiments.store import SESSION_PREFIX, ResultsStore, inspect_database
from rankrobust.experiments.study_config import StudyConfig
from rankrobust.experiments.study_file import load_study
from rankrobust.models import state_shapes
from rankrobust.progress import Progress
from rankrobust.work import check_work

DB_NAME = "results.sqlite"
MAX_ATTEMPTS = 3  # submits per session of a task lost with its node or worker
STOPPED_EXIT = 128 + signal.SIGTERM  # as a shell reports a process ended by SIGTERM


@dataclass
class SweepSummary:
    """What a sweep did; ``failed_total`` counts the study's runs in state failed at the end."""

    study: str
    db: Path
    total: int
    skipped: int
    executed: int
    complete: int
    failed: int
    failed_total: int
    seconds: float
    stopped: int = 0  # runs left pending because a stop was requested (SIGTERM)

    @property
    def exit_code(self) -> int:
        """143 (128 + SIGTERM) when stopped on request with runs left to do; else 0 when no
        run of the study is failed, 1 when one is."""
        if self.stopped:
            return STOPPED_EXIT
        return 1 if self.failed_total else 0

    def line(self) -> str:
        text = (f"study {self.study}: {self.total} runs, {self.skipped} already done, "
                f"{self.executed} executed ({self.complete} complete, {self.failed} failed) "
                f"in {self.seconds:.1f}s; {self.failed_total} failed in total; results {self.db}")
        if self.stopped:
            text += (f"; stopped on request with {self.stopped} run(s) still to do: rerun the "
                     "same command to resume")
        return text


def lock_path(db_path: str | os.PathLike[str]) -> Path:
    """``<db>.lock`` beside the real file: symlinks and ``..`` resolved, so every spelling of one
    database shares one lock."""
    real = Path(os.path.realpath(db_path))
    return real.with_name(real.name + ".lock")


@contextmanager
def exclusive(db_path: Path) -> Iterator[None]:
    """Hold ``<db>.lock`` (flock, see :func:`lock_path`) so that two drivers never share a
    database; the OS drops the lock when the holder dies, even by SIGKILL.

    The holder deletes the lock file when it is done. A driver that locked a file which was
    deleted meanwhile (its holder just finished) locks the new one instead, so the lock stays
    exclusive; a refused driver leaves no file behind.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"another sweep is writing {db_path}; wait for it to finish") from None
        try:
            current = os.stat(path)
            held = os.fstat(fd)
            if (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the file we locked was deleted by its last holder: lock the new one
    try:
        yield
    finally:
        with suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def check_models(configs: list[RunConfig]) -> None:
    """Every run's model must be buildable within the size caps of :mod:`rankrobust.models`
    (checked on PyTorch's meta device: nothing is allocated); ConfigError naming the run."""
    seen: set[str] = set()
    for config in configs:
        key = canonical_json([config.model, config.dataset, config.model_options])
        if key in seen:
            continue
        seen.add(key)
        info = dataset_info(config.dataset)
        try:
            state_shapes(config.model, info.in_shape, info.num_classes, **config.model_options)
        except ConfigError as exc:
            label = f" [run {config.label}]" if config.label else ""
            raise ConfigError(f"model_options: {exc}{label}") from None


def data_problem(configs: list[RunConfig]) -> str | None:
    """The first run whose data does not load (both splits, each dataset and data folder read
    once), as one line naming the run; None when all load."""
    seen: set[tuple[str, str | None]] = set()
    for config in configs:
        key = (config.dataset, config.data_dir)
        if key in seen:
            continue
        seen.add(key)
        try:
            for split in SPLITS:
                load_dataset_numpy(config.dataset, split, config.data_dir)
        except DataError as exc:
            label = f" [run {config.label}]" if config.label else ""
            return f"{exc}{label}"
    return None


def check_data(configs: list[RunConfig]) -> None:
    """Data that is missing, truncated or corrupt stops the study before anything is written
    (one DataError naming the run, :func:`data_problem`), instead of failing every run that
    reads it."""
    problem = data_problem(configs)
    if problem is not None:
        raise DataError(problem)


def check_study(study: StudyConfig, max_runs: int | None = None, max_hours: float | None = None,
                workers: int = 1) -> list[RunConfig]:
    """The runs of ``study`` after every check made before anything is written: the run cap
    (``max_runs``), each run's config, model size and data (:func:`check_data`), and the
    estimated work of all runs shared by ``workers`` against ``max_hours``
    (:mod:`rankrobust.work`)."""
    configs = expand(study, max_runs)
    check_models(configs)
    check_work(study_work(study.name, configs), max_hours, workers=workers)
    check_data(configs)  # last: it reads the files
    return configs


def plan(configs: list[RunConfig], store: ResultsStore, retry_failed: bool) -> list[RunConfig]:
    """The runs to execute now, in study order (see the module docstring)."""
    status = store.status_of([run_id(c) for c in configs])
    todo_states = {"pending", "running"} | ({"failed"} if retry_failed else set())
    return [c for c in configs if status.get(run_id(c), "pending") in todo_states]


def record(store: ResultsStore, result: RunResult) -> RunResult:
    """Store ``result``; one the store refuses (e.g. a value SQLite cannot hold) is stored as a
    failed run with that reason instead. Returns what was stored."""
    try:
        store.record(result)
    except Exception as exc:  # noqa: BLE001 - e.g. a value SQLite refuses
        result = failed_result(result.run_id, exc, result.started_at)
        store.record(result)
    return result


def run_sweep(
    study: StudyConfig | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    db: str | os.PathLike[str] | None = None,
    executor: str | Executor = "local",
    workers: int = 1,
    address: str | None = None,
    retry_failed: bool = False,
    progress: bool | None = None,
    command: str | None = None,
    max_runs: int | None = None,
    max_hours: float | None = None,
) -> SweepSummary:
    """Run every unfinished run of ``study`` (a StudyConfig or a YAML path) and store results.

    ``out`` (default ``.``) receives ``results.sqlite`` (unless ``db`` is given) and, for
    studies with ``save_checkpoints: true``, ``checkpoints/<run_id>/model.safetensors``.
    ``executor`` is "local" (``workers`` processes; 1 = in this process), "ray" (``address``
    or a local Ray), or an Executor instance. ``progress``: None (default) a bar on a terminal
    and a line every ~10 s in a log; False none; True also a closing line in a log
    (:class:`~rankrobust.progress.Progress`). ``command``: the command line stored in this
    session's provenance record (:mod:`rankrobust.experiments.provenance`).
    ``max_runs`` caps the runs the study may expand to (:func:`~rankrobust.experiments.grid.
    run_cap`); ``max_hours`` bounds the estimated work of all its runs, shared by ``workers``
    (:mod:`rankrobust.work`). Both come from the command line, never from the study file, and
    are checked before the database is touched.

    The executor is made (a Ray cluster joined) before the database is touched, so a cluster
    that cannot be reached leaves nothing written.
    """
    start = time.perf_counter()
    if not isinstance(study, StudyConfig):
        study = load_study(study)
    out_dir = Path(out if out is not None else ".").resolve()
    db_path = Path(db) if db is not None else out_dir / DB_NAME
    configs = [dataclasses.replace(c, output_dir=str(out_dir))
               for c in check_study(study, max_runs, max_hours, workers)]
    inspect_database(db_path)  # refuse a foreign file before creating its lock or writing to it
    ex = make_executor(executor, workers, address) if isinstance(executor, str) else executor
    try:
        with exclusive(db_path), ResultsStore(db_path) as store:
            if study.margins is not None:  # fixed before any result: refused if changed later
                store.declare_margins(study.margins)
            store.register(configs)
            session = session_record(command, executor if isinstance(executor, str)
                                     else type(executor).__name__, workers)
            todo, state, final = run_session(study.name, configs, store, ex, session, start,
                                             retry_failed, progress)
    except BaseException:
        if isinstance(executor, str):
            ex.abort()  # e.g. a second SIGTERM: do not wait for the runs still in the workers
        raise
    else:
        if isinstance(executor, str):
            ex.close()
    return SweepSummary(
        study=study.name, db=db_path, total=len(configs), skipped=len(configs) - len(todo),
        executed=state.complete + state.failed, complete=state.complete, failed=state.failed,
        failed_total=sum(1 for s in final.values() if s == "failed"),
        seconds=time.perf_counter() - start,
        stopped=sum(1 for s in final.values() if s in ("pending", "running")) if state.stopping
        else 0,
    )


def run_session(name: str, configs: list[RunConfig], store: ResultsStore, ex: Executor,
                session: dict[str, Any], start: float, retry_failed: bool,
                progress: bool | None) -> tuple[list[RunConfig], _Progress, dict[str, str]]:
    """Run the runs of ``configs`` still to do (:func:`plan`) on ``ex`` into ``store``: (those
    runs, the session's counts, every run's status at the end). A session that runs something
    stores its provenance ``session`` record, finished even when it is interrupted."""
    key = f"{SESSION_PREFIX}{utc_now()}/{os.getpid()}"
    todo: list[RunConfig] = []
    state = _Progress()

    def heartbeat() -> None:  # the time so far, in case this driver never reaches its end
        store.save_session(key, {**finish_record(session, time.perf_counter() - start,
                                                 state.complete + state.failed, state.failed),
                                 "finished_at": None})

    try:
        todo = plan(configs, store, retry_failed)
        if todo:  # a session that runs nothing (e.g. a rerun for the report) is not recorded
            store.save_session(key, session)
            state.work = {run_id(c): run_work(c).hours for c in todo}  # for an ETA by work
            bar = Progress(len(todo), name, "runs", enabled=progress,
                           total_work=sum(state.work.values()))
            try:
                with stop_on_sigterm(state):
                    drive(ex, store, deque(todo), bar, state, heartbeat)
            except BaseException:
                bar.close(ok=False)
                raise
            finally:
                bar.close()
        return todo, state, store.status_of([run_id(c) for c in configs])
    finally:  # an interrupted session keeps its record, with the time it ran
        if todo:
            store.save_session(key, finish_record(session, time.perf_counter() - start,
                                                  state.complete + state.failed, state.failed))


@dataclass
class _Progress:
    """The driver's view of one session: runs in flight and what came back."""

    complete: int = 0
    failed: int = 0
    in_flight: dict[str, RunConfig] = dataclasses.field(default_factory=dict)  # by run id
    tries: dict[str, int] = dataclasses.field(default_factory=dict)  # run id → submits
    stopping: bool = False  # a stop was requested: submit nothing more
    work: dict[str, float] = dataclasses.field(default_factory=dict)  # run id → estimated hours

    def postfix(self) -> str:
        stop = " stopping" if self.stopping else ""
        return f"done={self.complete} running={len(self.in_flight)} failed={self.failed}{stop}"


@contextmanager
def stop_on_sigterm(state: _Progress) -> Iterator[None]:
    """While the driver runs: the first SIGTERM sets ``state.stopping`` (finish the runs in
    flight, start none), a second raises KeyboardInterrupt (stop now, runs in flight back to
    pending). Outside the main thread signals cannot be handled: nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if state.stopping:
            raise KeyboardInterrupt
        state.stopping = True
        # os.write, not print: a signal may arrive in the middle of another write to stderr
        os.write(2, (f"rankrobust: stop requested (SIGTERM): finishing the {len(state.in_flight)}"
                     " run(s) in flight and starting no new one; SIGTERM again stops now\n"
                     ).encode())

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def drive(ex: Executor, store: ResultsStore, queue: deque[RunConfig], bar: Progress,
          state: _Progress, heartbeat: Callable[[], None] | None = None) -> None:
    """Hand the runs of ``queue`` to ``ex`` as its capacity allows (re-read before each
    submit) and store each result as it comes, counting in ``state``.

    A run lost with its node or worker (a result with ``lost``) goes back to the front of the
    queue, up to :data:`MAX_ATTEMPTS` submits in this session; then it is stored as failed.
    The executor's notices (a lost node, ...) are written as they come. Whatever ends the
    loop early (a lost cluster, Ctrl-C, a bug), the runs in flight go back to *pending*; a
    :class:`~rankrobust.experiments.executors.ClusterLostError` is raised again with how to
    resume. Once ``state.stopping`` is set (:func:`stop_on_sigterm`) nothing more is submitted
    and the loop ends when the runs in flight are stored. ``heartbeat`` is called after each
    batch of stored results.
    """
    try:
        while (queue and not state.stopping) or state.in_flight:
            while queue and not state.stopping and len(state.in_flight) < ex.capacity:
                submit(ex, store, queue.popleft(), state)
            bar.set_postfix(state.postfix())
            results = ex.wait()
            for line in ex.notices():
                bar.write(line)
            for result in results:
                collect(store, result, state, queue, bar)
            bar.set_postfix(state.postfix())
            if results and heartbeat is not None:
                heartbeat()
    except ClusterLostError as exc:
        back = release(store, state)
        raise ClusterLostError(
            f"{exc}; {back} run{'s' if back != 1 else ''} in flight back to pending: rerun the "
            "same command when the cluster is back, or resume here with --executor local"
        ) from None
    finally:
        release(store, state)


def submit(ex: Executor, store: ResultsStore, config: RunConfig, state: _Progress) -> None:
    """Mark ``config``'s run running and hand it to ``ex``."""
    rid = run_id(config)
    store.mark_running(rid)
    state.in_flight[rid] = config
    ex.submit(config)
    state.tries[rid] = state.tries.get(rid, 0) + 1


def collect(store: ResultsStore, result: RunResult, state: _Progress,
            queue: deque[RunConfig], bar: Progress) -> None:
    """Take one result: store it, or queue its run again (lost, with attempts left)."""
    config = state.in_flight.pop(result.run_id)
    if result.lost and state.tries[result.run_id] < MAX_ATTEMPTS:
        queue.appendleft(config)
        return
    done = record(store, result)
    if done.ok:
        state.complete += 1
    else:
        state.failed += 1
        bar.write(f"run {done.run_id} failed: {done.error}")
    bar.update(1, work=state.work.get(result.run_id))


def release(store: ResultsStore, state: _Progress) -> int:
    """Return the runs still in flight to *pending* (best effort); how many."""
    rids = list(state.in_flight)
    state.in_flight.clear()
    if rids:
        with suppress(Exception):
            store.mark_pending(rids)
    return len(rids)
