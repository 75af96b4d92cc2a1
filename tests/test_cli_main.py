"""The entry point: only rankrobust's own errors become one line and exit 2; bugs keep their
traceback; building the parser imports nothing heavy; help texts name every registry entry."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rankrobust.cli.runs as runs_command
from rankrobust.cli.main import COMMAND_MODULES, build_parser, main
from rankrobust.errors import ConfigError


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _failing_run(exc: BaseException) -> object:
    def run(args: argparse.Namespace) -> int:
        raise exc

    return run


@pytest.mark.parametrize("exc", [RuntimeError("bug"), ValueError("bug"), OSError(5, "bug")])
def test_internal_errors_propagate(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    monkeypatch.setattr(runs_command, "run", _failing_run(exc))
    with pytest.raises(type(exc), match="bug"):
        main(["runs"])


def test_a_bug_shows_its_traceback_and_exits_1() -> None:
    code = ("import sys, rankrobust.cli.runs as r\n"
            "def run(args): raise ValueError('deep inside torch')\n"
            "r.run = run\n"
            "from rankrobust.cli.main import main\n"
            "sys.exit(main(['runs']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "ValueError: deep inside torch" in out.stderr


def test_config_error_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runs_command, "run", _failing_run(ConfigError("--db: bad value")))
    assert main(["runs"]) == 2
    assert _one_line(capsys) == "rankrobust: error: --db: bad value"


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "--db", "{tmp}/missing.sqlite"],
        ["report", "{tmp}/missing.sqlite", "--out", "{tmp}/report"],
        ["analyze", "{tmp}/missing/model.safetensors"],
        ["sweep", "{tmp}/missing.yaml", "--out", "{tmp}/out"],
    ],
)
def test_missing_input_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert f"{tmp_path}/missing" in _one_line(capsys)


def test_uncreatable_output_folder_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["analyze", "unused.safetensors", "--plot", str(blocker / "plots")]) == 2
    assert f"--plot {blocker}/plots: cannot create the folder" in _one_line(capsys)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["analyze", "x", "--method", "gramm"], "--method: invalid choice 'gramm' (did you mean 'gram'?)"),
        (["analyze", "x", "--conv", "pertap"], "(did you mean 'per-tap'?)"),
        (["evaluate", "x", "--eps", "0.1", "--attack", "pdg"], "(did you mean 'pgd'?)"),
        (["evaluate", "x", "--eps", "0.1", "--dataset", "mnist4k"], "(did you mean 'mnist5k'?)"),
        (["reproduce", "--scale", "smal"], "(did you mean 'small'?)"),
    ],
)
def test_registry_names_are_checked_in_run_with_a_suggestion(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert main(argv) == 2
    assert needle in _one_line(capsys)


def test_building_the_parser_imports_nothing_heavy() -> None:
    # nor does the help of a command that names the datasets (the dataset catalogue is light;
    # evaluate's and intervene's help also name the attacks, whose registry imports torch)
    code = ("import sys\n"
            "from rankrobust.cli.main import build_parser\n"
            "sub = build_parser()._subparsers._group_actions[0].choices\n"
            "assert 'synthetic' in sub['reproduce'].format_help()\n"
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_attacking_commands_name_the_registered_datasets_and_attacks() -> None:
    from rankrobust.cli.main import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for command in ("evaluate", "intervene"):
        text = sub[command].format_help()
        assert "synthetic" in text and "fashion-mnist" in text and "autoattack" in text


def test_every_command_module_is_registered_once() -> None:
    names = [m.rsplit(".", 1)[1] for m in COMMAND_MODULES]
    assert len(set(names)) == len(names)
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == names


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def _registry(module: str, name: str) -> list[str]:
    return list(getattr(importlib.import_module(module), name))


@pytest.mark.parametrize(
    ("command", "registries"),
    [
        ("evaluate", [("rankrobust.attacks", "ATTACKS"), ("rankrobust.data", "DATASETS")]),
        ("analyze", [("rankrobust.structure", "CONV_MODES"), ("rankrobust.structure", "METHODS")]),
        ("reproduce", [("rankrobust.experiments.study", "SCALES"), ("rankrobust.data", "DATASETS")]),
        ("train", [("rankrobust.data", "DATASETS"), ("rankrobust.models", "MODELS")]),
        ("intervene", [("rankrobust.data", "DATASETS")]),
    ],
)
def test_help_names_every_registry_entry(
    capsys: pytest.CaptureFixture[str], command: str, registries: list[tuple[str, str]]
) -> None:
    text = _help(command, capsys)
    for module, name in registries:
        missing = [n for n in _registry(module, name) if n not in text]
        assert not missing, f"`rankrobust {command} --help` does not name {missing} of {name}"


def test_a_listing_piped_into_a_reader_that_left_prints_no_traceback() -> None:
    # `rankrobust attacks | head -0`: the reader is gone before the first write (EPIPE)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out = subprocess.run([sys.executable, "-m", "rankrobust", "attacks"], stdout=write_end,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr
    assert out.returncode == 141
