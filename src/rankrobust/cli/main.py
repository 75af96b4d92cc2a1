"""``rankrobust`` entry point: subcommands, one-line errors and exit codes.

Exit codes: 0 success; 1 a sweep finished with failed runs; 2 bad arguments or input (one line
on stderr, no traceback); 130 interrupted. Set RANKROBUST_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from rankrobust import __version__
from rankrobust.cli.common import Parser
from rankrobust.errors import RankRobustError

# Subcommand modules, in help order; each defines register(subparsers) and run(args) -> int.
COMMAND_MODULES: list[str] = [
    "rankrobust.cli.train",
    "rankrobust.cli.evaluate",
    "rankrobust.cli.analyze",
    "rankrobust.cli.sweep",
    "rankrobust.cli.runs",
    "rankrobust.cli.reproduce",
    "rankrobust.cli.report",
]


def build_parser() -> Parser:
    parser = Parser(
        prog="rankrobust",
        description="Low-rank and sparse weight structure vs adversarial robustness (PyTorch).",
    )
    parser.add_argument("--version", action="version", version=f"rankrobust {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    debug = os.environ.get("RANKROBUST_DEBUG") == "1"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.run(args))
    except RankRobustError as exc:
        if debug:
            raise
        print(f"rankrobust: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rankrobust: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as exc:
        # Filesystem problems and bad values surfacing from libraries: still one line.
        if debug:
            raise
        print(f"rankrobust: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
