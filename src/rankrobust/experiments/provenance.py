"""What produced a results database: one record per sweep invocation (a "session").

A study may span several sessions (it resumes), so each ``rankrobust sweep`` / ``reproduce``
invocation stores its own record in the database's ``meta`` table under ``sweep/<start>/<pid>``:

- ``command``: the command line as typed (``rankrobust reproduce --scale paper ...``), or the
  calling function for library use;
- ``git_commit``: the commit of the rankrobust source tree that ran (``+dirty`` when it had
  uncommitted changes), or null outside a git checkout;
- ``versions``: python, torch, numpy, rankrobust and the platform;
- ``host``, ``cpus``, ``executor``, ``workers``, ``started_at``, ``finished_at`` and ``seconds``
  (wall time of the session), ``runs_executed``, ``runs_failed``. (Records of sessions before
  stacked training was removed also hold ``stack``: true or false; they are read as they are.)

The report sums ``seconds`` over sessions for the study's wall time and prints the commands, so
that a reader can repeat the run.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

from rankrobust.experiments.run import package_versions, utc_now

GIT_TIMEOUT = 5.0  # seconds; provenance must never hold up a sweep


def git_commit(where: str | os.PathLike[str] | None = None) -> str | None:
    """HEAD of the git checkout holding ``where`` (default: this package's source), with
    ``+dirty`` when tracked files differ from it; None when git or the checkout is missing."""
    folder = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=GIT_TIMEOUT, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=GIT_TIMEOUT, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if len(head) != 40 or any(c not in "0123456789abcdef" for c in head):
        return None
    return head + ("+dirty" if dirty else "")


def session_record(command: str | None, executor: str, workers: int) -> dict[str, Any]:
    """The record of a sweep session starting now (finish it with :func:`finish_record`)."""
    return {
        "command": command or "rankrobust.experiments.run_sweep (library call)",
        "git_commit": git_commit(),
        "versions": {**package_versions(), "platform": platform.platform()},
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "executor": executor,
        "workers": workers,
        "started_at": utc_now(),
        "finished_at": None,
        "seconds": None,
    }


def finish_record(record: dict[str, Any], seconds: float, executed: int, failed: int
                  ) -> dict[str, Any]:
    """``record`` with its end: wall ``seconds`` and how many runs it executed and failed."""
    return {**record, "finished_at": utc_now(), "seconds": round(float(seconds), 3),
            "runs_executed": executed, "runs_failed": failed}
