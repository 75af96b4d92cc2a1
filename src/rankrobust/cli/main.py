"""``rankrobust`` entry point: subcommands, one-line errors and exit codes.

Exit codes: 0 success; 2 bad arguments or input — a :class:`~rankrobust.errors.RankRobustError`,
printed as one line on stderr without a traceback; 130 interrupted; 1 a sweep finished with failed
runs, or a bug: any other exception propagates with its traceback (Python's exit status 1). Set
RANKROBUST_DEBUG=1 to see the traceback of a RankRobustError too.

Building the parser imports every subcommand module, so those modules import nothing heavy at
the top: torch, pandas and matplotlib are imported inside each command's ``run()``, and
``rankrobust --help`` answers without them.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from collections.abc import Sequence

from rankrobust import __version__
from rankrobust.cli.common import Parser
from rankrobust.errors import RankRobustError

# Subcommand modules, in help order; each defines register(subparsers) and run(args) -> int.
COMMAND_MODULES: list[str] = [
    "rankrobust.cli.train",
    "rankrobust.cli.methods",
    "rankrobust.cli.models",
    "rankrobust.cli.datasets",
    "rankrobust.cli.evaluate",
    "rankrobust.cli.attacks",
    "rankrobust.cli.analyze",
    "rankrobust.cli.intervene",
    "rankrobust.cli.sweep",
    "rankrobust.cli.runs",
    "rankrobust.cli.reproduce",
    "rankrobust.cli.report",
    "rankrobust.cli.export",
]


def build_parser() -> Parser:
    """The ``rankrobust`` parser with every subcommand of :data:`COMMAND_MODULES` registered."""
    parser = Parser(
        prog="rankrobust",
        description="Low-rank and sparse weight structure vs adversarial robustness (PyTorch).",
    )
    parser.add_argument("--version", action="version", version=f"rankrobust {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def one_line(message: str) -> str:
    """``message`` on one line: a user error is always exactly one line on stderr."""
    return " ".join(message.split()) or "(no message)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; only rankrobust's own errors become one line and exit code 2."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        # as typed, for the provenance records of the commands that write results
        args.command_line = shlex.join(["rankrobust", *(sys.argv[1:] if argv is None else argv)])
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.run(args))
    except RankRobustError as exc:
        if os.environ.get("RANKROBUST_DEBUG") == "1":
            raise
        print(f"rankrobust: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rankrobust: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rankrobust methods | head`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail
        return 141  # 128 + SIGPIPE, as a shell reports it


if __name__ == "__main__":
    sys.exit(main())
