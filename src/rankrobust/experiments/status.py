"""Where a study stands: its runs by status, the share of its estimated work that is done, the
wall time its sweep sessions have taken, and an ETA at that pace (``rankrobust runs --summary``).

Runs cost very different amounts (seconds for a small MLP, half an hour for an adversarial CNN),
so progress is counted in estimated work (:func:`~rankrobust.experiments.estimate.run_work`,
the estimate ``--max-hours`` checks), not in runs: ``done = Σ work(complete or failed) / Σ
work(all)``. The ETA is ``wall × (1 − done) / done``, the sessions' summed wall time per share
of work so far times the share still to do; the runs in flight are counted as not done.
The estimate is a bound that counts every attack step; attacks stop early on points already
fooled, so the runs of non-robust models end sooner than their weight says, and an ETA taken
while those run leans optimistic.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pandas as pd

from rankrobust.errors import RankRobustError
from rankrobust.experiments.config import run_config_from_dict
from rankrobust.experiments.estimate import run_work
from rankrobust.experiments.schema import STATUSES
from rankrobust.progress import clock_text


@dataclass
class StudyStatus:
    """The counts, work shares and times of one results database (see the module docstring)."""

    studies: list[str]
    counts: dict[str, int]
    work_done: float  # share of the estimated work in runs that have ended, in [0, 1]
    wall_seconds: float  # summed over the sessions that recorded a wall time
    sessions: int
    sessions_without_time: int = 0
    unreadable: list[str] = field(default_factory=list)  # run ids whose config does not parse

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def eta_seconds(self) -> float | None:
        """Wall time still to go at the pace so far; None before any work is done."""
        if not self.work_done > 0 or self.wall_seconds <= 0:
            return None
        return self.wall_seconds * (1.0 - self.work_done) / self.work_done

    def lines(self) -> list[str]:
        names = ", ".join(self.studies) or "–"
        counts = ", ".join(f"{self.counts[s]} {s}" for s in STATUSES)
        out = [f"study {names}: {self.total} runs: {counts}",
               f"estimated work done: {100 * self.work_done:.1f} % (runs weighed by the work "
               "estimate of --max-hours)"]
        wall = (f"wall time so far: {clock_text(self.wall_seconds)} over {self.sessions} sweep "
                "session(s)")
        if self.sessions_without_time:
            wall += f" ({self.sessions_without_time} without a recorded time)"
        eta = self.eta_seconds
        if self.counts.get("pending", 0) + self.counts.get("running", 0) == 0:
            wall += "; nothing left to run"
        elif eta is not None:
            wall += f"; ETA at this pace {clock_text(eta)}"
        out.append(wall)
        if self.unreadable:
            out.append(f"{len(self.unreadable)} run(s) with a config this version cannot read "
                       f"(left out of the work shares): {', '.join(self.unreadable[:5])}")
        return out


def study_status(runs: pd.DataFrame, sessions: pd.DataFrame) -> StudyStatus:
    """The status of the runs in ``runs`` (``ResultsStore.runs()``, with their ``config``)
    and the sessions in ``sessions`` (``ResultsStore.sessions()``)."""
    counts = {s: int((runs["status"] == s).sum()) for s in STATUSES}
    done = total = 0.0
    unreadable = []
    for rid, status, config in zip(runs["run_id"], runs["status"], runs["config"], strict=True):
        try:
            hours = run_work(run_config_from_dict(json.loads(config))).hours
        except (RankRobustError, ValueError, TypeError, KeyError):  # a config of another version
            unreadable.append(str(rid))
            continue
        if not math.isfinite(hours):
            unreadable.append(str(rid))
            continue
        total += hours
        if status in ("complete", "failed"):
            done += hours
    seconds = sessions["seconds"] if "seconds" in sessions else pd.Series(dtype=float)
    timed = pd.to_numeric(seconds, errors="coerce")
    timed = timed[timed.notna() & (timed >= 0) & timed.map(math.isfinite)]
    return StudyStatus(
        studies=sorted({str(s) for s in runs["study"].dropna()}) if "study" in runs else [],
        counts=counts, work_done=done / total if total > 0 else 0.0,
        wall_seconds=float(timed.sum()), sessions=len(sessions),
        sessions_without_time=len(sessions) - len(timed), unreadable=unreadable,
    )
