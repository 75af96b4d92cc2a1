"""What produced a results database, as the report shows it: wall time, versions, sessions.

Session records are read and checked by :mod:`.stored`; here they are only formatted. A session
that never ended (killed, or still running) has no wall time and no run counts: it is shown as
such, never as ``nan``. Sums of wall times are checked: values each valid can overflow together.
"""

from __future__ import annotations

import math
import os
import platform
from typing import Any

import pandas as pd

from rankrobust.report.document import Markup, code, markup_frame, plain
from rankrobust.report.tables import StudyTables

# Longer than any study: a wall time past it is shown in seconds, as stored, and flagged.
PLAUSIBLE_SECONDS = 10 * 365 * 24 * 3600.0
NOT_ENDED = "–"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def duration(seconds: float) -> str:
    """'1 h 02 min 05 s', '2 min 05 s'; '–' for no finite value, seconds for implausible ones."""
    if not math.isfinite(seconds) or seconds < 0:
        return "–"
    if seconds > PLAUSIBLE_SECONDS:
        return f"{seconds:.3g} s (implausible: over 10 years)"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {sec:02d} s" if hours else f"{minutes} min {sec:02d} s"


def _span(runs: pd.DataFrame) -> float | None:
    """Seconds from the first run's start to the last run's finish (None if not stored)."""
    if not {"started_at", "finished_at"} <= set(runs.columns) or runs.empty:
        return None
    start = pd.to_datetime(runs["started_at"], errors="coerce", utc=True, format="ISO8601").min()
    end = pd.to_datetime(runs["finished_at"], errors="coerce", utc=True, format="ISO8601").max()
    return None if pd.isna(start) or pd.isna(end) else max(0.0, (end - start).total_seconds())


def machine(tables: StudyTables) -> str:
    """The host the runs stored, else this machine."""
    for col in ("host", "machine"):
        if col in tables.runs.columns and tables.runs[col].notna().any():
            return str(tables.runs[col].dropna().iloc[0])
    return f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs)"


def _wall_time(sessions: pd.DataFrame) -> list[str]:
    if not len(sessions) or "seconds" not in sessions:
        return []
    ended = sessions["seconds"].notna()
    parts = []
    if ended.any():
        total = sum(float(s) for s in sessions.loc[ended, "seconds"])  # inf on overflow
        if math.isfinite(total):
            parts.append(f"Wall time **{duration(total)}**, summed over {int(ended.sum())} sweep "
                         f"session(s) (table below; a study resumes across sessions).")
        else:
            parts.append(f"The {int(ended.sum())} sessions' stored wall times do not add up to a "
                         "finite number: no total wall time is given.")
    if not ended.all():  # a session writes its wall time when it ends
        parts.append(f"{int((~ended).sum())} session(s) with no end recorded (still running, "
                     "or killed): their time is not in the sum.")
    return parts


def _versions(tables: StudyTables) -> dict[str, str]:
    sessions = tables.sessions
    if len(sessions) and "versions" in sessions:
        last = [v for v in sessions["versions"] if isinstance(v, dict)]
        if last:
            return {str(k): str(v) for k, v in last[-1].items()}
    versions = {}
    for name in ("python", "torch", "numpy", "rankrobust"):
        col = f"{name}_version"
        if col in tables.runs and tables.runs[col].notna().any():
            versions[name] = ", ".join(sorted(map(str, tables.runs[col].dropna().unique())))
    return versions


def _text(value: Any) -> Markup:
    return Markup("–") if _missing(value) else plain(value)


def _session_row(rec: dict[Any, Any]) -> dict[str, Markup]:
    ended = not _missing(rec.get("seconds"))
    failed: Any = rec.get("runs_failed")
    counts = (f"{int(rec['runs_executed'])} / {0 if _missing(failed) else int(failed)}"
              if not _missing(rec.get("runs_executed")) else "– (killed or still running)")
    executor = (f"{_text(rec.get('executor'))} × {_text(rec.get('workers'))} on "
                f"{_text(rec.get('host'))} ({_text(rec.get('cpus'))} CPUs)")
    commit, command = rec.get("git_commit"), rec.get("command")
    return {
        "started": _text(rec.get("started_at")),
        "wall time": Markup(NOT_ENDED if not ended else duration(float(rec["seconds"]))
                            if not _missing(rec.get("finished_at"))
                            else f"{duration(float(rec['seconds']))} (to its last stored run: no "
                                 "end recorded, still running or killed)"),
        "runs run / failed": Markup(counts if ended else "– (killed or still running)"),
        "executor": Markup(executor),
        "git commit": Markup("–") if _missing(commit) else code(commit),
        "command": Markup("–") if _missing(command) else code(command),
    }


SESSION_COLUMNS = ["started", "wall time", "runs run / failed", "executor", "git commit", "command"]


def provenance(tables: StudyTables) -> tuple[str, pd.DataFrame]:
    """What produced the results: a paragraph (wall time, versions) and the sweep sessions'
    table (start, wall time, runs, executor, git commit, command), empty when none is stored."""
    parts = _wall_time(tables.sessions)
    span = _span(tables.runs)
    if span is not None:
        parts.append(f"First run start to last run finish: {duration(span)}.")
    versions = _versions(tables)
    if versions:
        parts.append("Versions: " + "; ".join(f"{plain(k)} {plain(v)}"
                                              for k, v in sorted(versions.items())) + ".")
    if tables.notes:
        parts.append("Left out of the session records (wrong type): "
                     + "; ".join(plain(n) for n in tables.notes) + ".")
    records = tables.sessions.to_dict(orient="records") if len(tables.sessions) else []
    rows = [_session_row(rec) for rec in records]
    return " ".join(parts), markup_frame(rows, columns=SESSION_COLUMNS)
