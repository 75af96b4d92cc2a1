"""Are two results databases the same numbers? Table by table, every row, exact (NaN equals NaN).

Left out, because they differ between any two runs of the same study: timing columns and
``time_*`` scalars, timestamps, host / node / process ids, checkpoint paths and the ``meta``
table (sessions: command line, commit, wall time). Used for issue #20's check that a redesign
changes no number: ``make demo`` before and after, then

    .venv/bin/python benchmarks/compare_databases.py OLD/results.sqlite NEW/results.sqlite

Prints one line per table and, last, one JSON object ``{"identical": bool, "tables": {...}}``;
the exit code is 0 when every table is identical, 1 otherwise.
"""

from __future__ import annotations

import json
import sqlite3
import sys

import pandas as pd

VOLATILE = ("seconds", "registered", "started", "finished", "pid", "host", "commit", "wall",
            "created", "updated", "checkpoint", "node")


def read(path: str, table: str) -> pd.DataFrame:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        frame = pd.read_sql(f'SELECT * FROM "{table}"', con)
    if table == "scalars":
        frame = frame[~frame["name"].str.startswith("time_")]
    return frame[[c for c in frame.columns if not any(v in c.lower() for v in VOLATILE)]]


def tables_of(path: str) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]


def compare(old: str, new: str) -> dict[str, str]:
    """Table → "identical (N rows)" or what differs."""
    old_tables, new_tables = tables_of(old), tables_of(new)
    out: dict[str, str] = {}
    for table in dict.fromkeys(t for t in old_tables + new_tables if t != "meta"):
        if table not in old_tables or table not in new_tables:
            out[table] = f"only in {'OLD' if table in old_tables else 'NEW'}"
            continue
        a, b = read(old, table), read(new, table)
        if list(a.columns) != list(b.columns):
            out[table] = f"columns differ: {sorted(set(a.columns) ^ set(b.columns))}"
            continue
        cols = list(a.columns)
        a = a.sort_values(cols, na_position="first").reset_index(drop=True)
        b = b.sort_values(cols, na_position="first").reset_index(drop=True)
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True, check_dtype=False)
            out[table] = f"identical ({len(a)} rows, {len(cols)} columns)"
        except AssertionError as exc:
            out[table] = "DIFFERENT: " + " ".join(str(exc).split())[:300]
    return out


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.splitlines()[0] + "\nusage: compare_databases.py OLD.sqlite NEW.sqlite",
              file=sys.stderr)
        return 2
    try:
        result = compare(sys.argv[1], sys.argv[2])
    except (sqlite3.Error, pd.errors.DatabaseError) as exc:  # not a database, or not ours
        print(f"compare_databases: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    for table, verdict in result.items():
        print(f"{table}: {verdict}")
    identical = all(v.startswith("identical") for v in result.values())
    print(json.dumps({"identical": identical, "tables": result}))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
