"""The sweep driver: expand a study, skip what is done, run the rest, store every result.

Resume rules, per run id of the expanded study:

- ``complete``: skipped;
- ``pending`` or ``running`` (a driver was killed while it ran): run (again);
- ``failed``: skipped unless ``retry_failed``.

With ``stack``, the runs to execute are grouped by
:func:`~rankrobust.training.stacked.stack_groups` (same data, architecture, loop and optimizer
settings; methods that stack; at most ``max_stack`` runs) and each group is one executor task
that trains its runs as one stacked model (:func:`~rankrobust.experiments.run.execute_runs`);
runs that do not stack are tasks of their own. Groups form from the runs still to do, so a
resumed sweep regroups what is left. Each run's result is stored on its own, as without
stacking (its ``epoch_metrics`` rows also carry ``stack_size``). A group whose runs all come back
failed with one same error (a crashed worker, say), other than divergence, is retried once with
each run alone.

Only this driver writes the database, one transaction per state change, so killing it at any
moment loses at most the runs in flight, which the next sweep reruns. A run that raises or
diverges is stored as failed with its reason and the sweep goes on.

Tasks are handed to the executor as its ``capacity`` allows, read again before each submit (a
Ray cluster that grows gets more). A task *lost* with its node or worker (not a failure of the
run) is queued again, at most :data:`MAX_ATTEMPTS` submits per session, then stored as failed.
When the loop ends early (the cluster went away, Ctrl-C) the runs in flight go back to
*pending*; a lost cluster is reported in one line that says how to resume.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from rankrobust.data import dataset_info
from rankrobust.errors import ConfigError
from rankrobust.experiments.config import RunConfig
from rankrobust.experiments.estimate import study_work
from rankrobust.experiments.executors import ClusterLostError, Executor, make_executor
from rankrobust.experiments.grid import canonical_json, expand, run_id
from rankrobust.experiments.provenance import finish_record, session_record
from rankrobust.experiments.run import RunResult, failed_result, utc_now
from rankrobust.experiments.store import SESSION_PREFIX, ResultsStore, inspect_database
from rankrobust.experiments.study_config import StudyConfig
from rankrobust.experiments.study_file import load_study
from rankrobust.models import state_shapes
from rankrobust.progress import Progress
from rankrobust.training.stacked import DEFAULT_MAX_GROUP, stack_groups
from rankrobust.work import check_work

DB_NAME = "results.sqlite"
MAX_ATTEMPTS = 3  # submits per session of a task lost with its node or worker


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

    @property
    def exit_code(self) -> int:
        """0 when no run of the study is failed, else 1."""
        return 1 if self.failed_total else 0

    def line(self) -> str:
        return (f"study {self.study}: {self.total} runs, {self.skipped} already done, "
                f"{self.executed} executed ({self.complete} complete, {self.failed} failed) "
                f"in {self.seconds:.1f}s; {self.failed_total} failed in total; results {self.db}")


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


def check_study(study: StudyConfig, max_runs: int | None = None, max_hours: float | None = None,
                workers: int = 1) -> list[RunConfig]:
    """The runs of ``study`` after every check made before anything is written: the run cap
    (``max_runs``), each run's config and model size, and the estimated work of all runs
    shared by ``workers`` against ``max_hours`` (:mod:`rankrobust.work`)."""
    configs = expand(study, max_runs)
    check_models(configs)
    check_work(study_work(study.name, configs), max_hours, workers=workers)
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


def tasks(configs: list[RunConfig], stack: bool, max_stack: int = DEFAULT_MAX_GROUP
          ) -> list[list[RunConfig]]:
    """The executor tasks for ``configs``: one run each, or with ``stack`` the groups of
    :func:`~rankrobust.training.stacked.stack_groups`, largest first (so that no big group is
    left to run alone at the end), in study order otherwise."""
    if not stack:
        return [[c] for c in configs]
    groups = stack_groups(configs, max_stack)
    return [[configs[i] for i in g] for g in sorted(groups, key=len, reverse=True)]


def describe_tasks(task_list: list[list[RunConfig]]) -> list[str]:
    """One line per stacked task (groups of more than one run), then one for the solo runs:
    what ``--stack`` would submit, for ``sweep --dry-run``. E.g.
    ``stack of 10: lenet5 on mnist5k, seed 0: natural, l1 ×3, nuclear ×3, …``."""
    lines, solo = [], 0
    for task in task_list:
        if len(task) == 1:
            solo += 1
            continue
        methods: dict[str, int] = {}
        for config in task:
            methods[config.method] = methods.get(config.method, 0) + 1
        seeds = sorted({c.seed for c in task})
        first = task[0]
        lines.append(f"stack of {len(task)}: {first.model} on {first.dataset}, "
                     f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}: "
                     + ", ".join(m if k == 1 else f"{m} ×{k}" for m, k in methods.items()))
    if solo:
        lines.append(f"{solo} run{'s' if solo > 1 else ''} alone (not stackable with another "
                     "pending run)")
    return lines


def retry_alone(task: list[RunConfig], results: list[RunResult]) -> bool:
    """Whether a finished task's runs should run again one by one: a group whose runs all
    failed with one same error that is not divergence (e.g. its worker was killed)."""
    errors = {r.error for r in results}
    return (len(task) > 1 and not any(r.ok for r in results) and len(errors) == 1
            and not str(next(iter(errors))).startswith("TrainingDivergedError"))


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
    stack: bool = False,
    max_stack: int | None = None,
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
    (:class:`~rankrobust.progress.Progress`).
    ``stack``: train compatible runs together, at most ``max_stack`` (default
    :data:`~rankrobust.training.stacked.DEFAULT_MAX_GROUP`) per stacked model (see the module
    docstring); results as without it, up to float rounding. ``command``: the command line
    stored in this session's provenance record (:mod:`rankrobust.experiments.provenance`).
    ``max_runs`` caps the runs the study may expand to (:func:`~rankrobust.experiments.grid.
    run_cap`); ``max_hours`` bounds the estimated work of all its runs, shared by ``workers``
    (:mod:`rankrobust.work`). Both come from the command line, never from the study file, and
    are checked before the database is touched.

    The executor is made (a Ray cluster joined) before the database is touched, so a cluster
    that cannot be reached leaves nothing written.
    """
    start = time.perf_counter()
    max_stack = DEFAULT_MAX_GROUP if max_stack is None else max_stack
    if max_stack < 1:
        raise ConfigError(f"--max-stack must be ≥ 1, got {max_stack}")
    if not isinstance(study, StudyConfig):
        study = load_study(study)
    out_dir = Path(out if out is not None else ".").resolve()
    db_path = Path(db) if db is not None else out_dir / DB_NAME
    configs = [dataclasses.replace(c, output_dir=str(out_dir))
               for c in check_study(study, max_runs, max_hours, workers)]
    ids = [run_id(c) for c in configs]
    inspect_database(db_path)  # refuse a foreign file before creating its lock or writing to it
    ex = make_executor(executor, workers, address) if isinstance(executor, str) else executor
    try:
        with exclusive(db_path), ResultsStore(db_path) as store:
            if study.margins is not None:  # fixed before any result: refused if changed later
                store.declare_margins(study.margins)
            store.register(configs)
            key = f"{SESSION_PREFIX}{utc_now()}/{os.getpid()}"
            session = session_record(command, executor if isinstance(executor, str)
                                     else type(executor).__name__, workers, stack)
            todo: list[RunConfig] = []
            state = _Progress()
            try:
                todo = plan(configs, store, retry_failed)
                if todo:  # a session that runs nothing (e.g. a rerun for the report) is not recorded
                    store.save_session(key, session)
                    bar = Progress(len(todo), study.name, "runs", enabled=progress)
                    try:
                        drive(ex, store, deque(tasks(todo, stack, max_stack)), bar, state)
                    except BaseException:
                        bar.close(ok=False)
                        raise
                    finally:
                        bar.close()
                final = store.status_of(ids)
            finally:  # an interrupted session keeps its record, with the time it ran
                if todo:
                    store.save_session(key, finish_record(session, time.perf_counter() - start,
                                                          state.complete + state.failed, state.failed))
    finally:
        if isinstance(executor, str):
            ex.close()
    return SweepSummary(
        study=study.name, db=db_path, total=len(ids), skipped=len(ids) - len(todo),
        executed=state.complete + state.failed, complete=state.complete, failed=state.failed,
        failed_total=sum(1 for s in final.values() if s == "failed"),
        seconds=time.perf_counter() - start,
    )


@dataclass
class _Progress:
    """The driver's view of one session: tasks in flight and what came back."""

    complete: int = 0
    failed: int = 0
    submitted: int = 0
    open_tasks: dict[int, tuple[list[RunConfig], list[RunResult]]] = dataclasses.field(default_factory=dict)
    task_of: dict[str, int] = dataclasses.field(default_factory=dict)  # run id in flight → its task
    tries: dict[tuple[str, ...], int] = dataclasses.field(default_factory=dict)  # task → submits

    def postfix(self) -> str:
        return f"done={self.complete} running={len(self.task_of)} failed={self.failed}"


def drive(ex: Executor, store: ResultsStore, queue: deque[list[RunConfig]], bar: Progress,
          state: _Progress) -> None:
    """Hand the tasks of ``queue`` to ``ex`` as its capacity allows (re-read before each
    submit) and store each result as it comes, counting in ``state``.

    A task lost with its node or worker (results with ``lost``) goes back to the front of the
    queue, up to :data:`MAX_ATTEMPTS` submits in this session; then its runs are stored as
    failed. The executor's notices (a lost node, ...) are written as they come. Whatever ends
    the loop early (a lost cluster, Ctrl-C, a bug), the runs in flight go back to *pending*; a
    :class:`~rankrobust.experiments.executors.ClusterLostError` is raised again with how to
    resume.
    """
    try:
        while queue or state.open_tasks:
            while queue and len(state.open_tasks) < ex.capacity:
                submit(ex, store, queue.popleft(), state)
            bar.set_postfix(state.postfix())
            results = ex.wait()
            for line in ex.notices():
                bar.write(line)
            for result in results:
                collect(store, result, state, queue, bar)
            bar.set_postfix(state.postfix())
    except ClusterLostError as exc:
        back = release(store, state)
        raise ClusterLostError(
            f"{exc}; {back} run{'s' if back != 1 else ''} in flight back to pending: rerun the "
            "same command when the cluster is back, or resume here with --executor local"
        ) from None
    finally:
        release(store, state)


def submit(ex: Executor, store: ResultsStore, task: list[RunConfig], state: _Progress) -> None:
    """Mark ``task``'s runs running and hand it to ``ex``."""
    for config in task:
        store.mark_running(run_id(config))
        state.task_of[run_id(config)] = state.submitted
    ex.submit(task)
    state.open_tasks[state.submitted] = (task, [])
    key = tuple(run_id(c) for c in task)
    state.tries[key] = state.tries.get(key, 0) + 1
    state.submitted += 1


def collect(store: ResultsStore, result: RunResult, state: _Progress,
            queue: deque[list[RunConfig]], bar: Progress) -> None:
    """Take one result; when its task is complete, store its results, or queue it again (a
    lost task with attempts left, a failed stack to run alone)."""
    number = state.task_of.pop(result.run_id)
    task, results = state.open_tasks[number]
    results.append(result)
    if len(results) < len(task):
        return
    del state.open_tasks[number]
    if all(r.lost for r in results) and state.tries[tuple(run_id(c) for c in task)] < MAX_ATTEMPTS:
        queue.appendleft(task)
        return
    if retry_alone(task, results):
        bar.write(f"{len(task)} stacked runs failed ({results[0].error}); "
                  "running them one by one")
        queue.extendleft([c] for c in reversed(task))
        return
    for done in results:
        done = record(store, done)
        if done.ok:
            state.complete += 1
        else:
            state.failed += 1
            bar.write(f"run {done.run_id} failed: {done.error}")
        bar.update(1)


def release(store: ResultsStore, state: _Progress) -> int:
    """Return the runs still in flight to *pending* (best effort); how many."""
    rids = list(state.task_of)
    state.task_of.clear()
    state.open_tasks.clear()
    if rids:
        with suppress(Exception):
            store.mark_pending(rids)
    return len(rids)
