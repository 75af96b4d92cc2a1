"""Nothing unbounded (issue 22, sections 2-4): work is estimated before it starts and refused
above ``--max-hours``; the run cap is raised from the command line only; seeds are range-checked
in every command; a CIFAR-10 batch cannot declare more than a batch; dry runs write nothing."""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from rankrobust.checkpoint import save_checkpoint
from rankrobust.cli.main import main
from rankrobust.configuration import MAX_SEED
from rankrobust.data import load_dataset
from rankrobust.errors import ConfigError, DataError
from rankrobust.experiments import expand, study_from_dict
from rankrobust.experiments.estimate import run_work
from rankrobust.experiments.store import ResultsStore
from rankrobust.models import ModelSpec
from rankrobust.work import FORWARD, Work, attack_passes, check_work, training_passes

STUDY: dict[str, Any] = {
    "name": "b", "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
    "train": {"epochs": 1, "batch_size": 64, "device": "cpu"},
    "evaluation": {"n": 16, "attacks": [{"attack": "fgsm", "epsilons": [0.1]}]},
    "seeds": [0],
}


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rankrobust: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    spec = ModelSpec("mlp", (1, 16, 16), 4, {"hidden": [8]})
    folder = tmp_path_factory.mktemp("ck")
    return save_checkpoint(folder, spec.build(), spec, {"dataset": "synthetic"})


# -- the estimate itself: closed forms -------------------------------------------------------------
def test_attack_passes_follow_the_documented_products() -> None:
    assert attack_passes("pgd", 3, 10, {"steps": 10, "restarts": 2}) == pytest.approx(3 * 2 * (10 + FORWARD))
    assert attack_passes("pgd", 2, 10, {}) == pytest.approx(2 * (40 + FORWARD))  # pgd's defaults
    assert attack_passes("apgd-t", 4, 10, {"steps": 5}) == pytest.approx(4 * 5 * 9)
    assert attack_passes("apgd-t", 4, 3, {"steps": 5}) == pytest.approx(4 * 5 * 2)  # C − 1 targets
    assert attack_passes("square", 2, 10, {"n_queries": 10**12}) == pytest.approx(2e12 * FORWARD)
    assert attack_passes("fgsm", 15_000, 10, {}) == pytest.approx(1 + 15_000 * FORWARD)
    assert attack_passes("deepfool", 7, 10, {"max_iter": 3}) == 30  # one run serves every ε
    aa = attack_passes("autoattack", 2, 10, {"steps": 10, "n_queries": 30})
    assert aa == pytest.approx(2 * (10 + 10 * 9 + 30 * FORWARD))
    assert training_passes(3, 100, 10, 8.0) == pytest.approx(3 * (100 * 8 + 10 * FORWARD))


def test_a_run_estimate_multiplies_every_count() -> None:
    """Doubling any one count (epochs, steps, restarts, points, budgets, keep levels) of a run
    doubles that part of its estimate: work grows with every input, nothing is left out."""
    base = {**STUDY, "train": {**STUDY["train"], "method": {"name": "pgd-adv", "steps": 5}},
            "evaluation": {"n": 16, "attacks": [{"attack": "pgd", "epsilons": [0.1], "options": {"steps": 7}}],
                           "interventions": [{"kind": "svd", "keeps": [0.5, 1.0], "deepfool": False}]}}

    def passes(data: dict[str, Any]) -> float:
        return run_work(expand(study_from_dict(data))[0]).passes

    def grow(path: str, value: Any) -> float:
        data = yaml.safe_load(yaml.safe_dump(base))
        node = data
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[leaf] = value
        return passes(data) - passes(base)

    train = 512 * 6 + 256 * FORWARD  # synthetic: 512 train, 256 test examples per epoch
    assert grow("train.epochs", 2) == pytest.approx(train)
    assert grow("train.method.steps", 10) == pytest.approx(512 * 5)
    assert grow("evaluation.attacks.0.options", {"steps": 14}) == pytest.approx(16 * 7)
    assert grow("evaluation.attacks.0.options", {"steps": 7, "restarts": 2}) == pytest.approx(16 * (7 + FORWARD))
    assert grow("evaluation.attacks.0.epsilons", [0.1, 0.2]) == pytest.approx(16 * (7 + FORWARD))
    per_level = 16 * (FORWARD + 40 + FORWARD)  # clean pass + pgd (40 steps) at one ε
    assert grow("evaluation.interventions.0.keeps", [0.25, 0.5, 1.0]) == pytest.approx(per_level)
    # the images an epoch trains on: what validation leaves, or train_size of them
    per_image = 6  # pgd-adv, 5 steps: 5 + 1 forward+backward passes
    assert grow("train.validation_size", 112) == pytest.approx(-112 * per_image)
    assert grow("train.train_size", 100) == pytest.approx(-(512 - 100) * per_image)
    assert grow("train.train_size", 10_000) == pytest.approx(0)  # no more than there are


def test_the_refusal_is_one_line_with_the_estimate_and_the_flag() -> None:
    work = Work(1e15, 1e-4, "this thing")
    with pytest.raises(ConfigError) as caught:
        check_work(work, None)
    line = str(caught.value)
    assert "this thing" in line and "1e+15" in line and "--max-hours" in line and "\n" not in line
    check_work(work, 1e15 * 1e-4 / 3600 * 1.01)  # the flag raises the bound
    check_work(work, 1e15 * 1e-4 / 3600 / 1.99, workers=2)  # shared by workers
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ConfigError, match="max-hours"):
            check_work(Work(1, 1e-6), bad)


# -- refused through every command ---------------------------------------------------------------
TRAIN = ["train", "--dataset", "synthetic", "--model", "mlp", "--hidden", "8", "--epochs", "1",
         "--no-progress"]


@pytest.mark.parametrize("argv", [
    ["--method", "pgd-adv", "--set", "steps=1000000000"],
    ["--method", "trades", "--set", "steps=1000000000"],
    ["--method", "pgd-adv", "--adv-steps", "1000000000"],
    ["--epochs", "1000000000"],
    ["--epochs", "100000000", "--method", "fgsm-adv"],
])
def test_train_refuses_unbounded_work(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    assert main([*TRAIN, "--out", str(tmp_path / "o"), *argv]) == 2
    line = _one_error(capsys)
    assert "passes" in line and "--max-hours" in line
    assert time.perf_counter() - start < 60 and not (tmp_path / "o").exists()


def test_max_hours_is_a_bound_in_both_directions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*TRAIN, "--out", str(tmp_path / "o"), "--max-hours", "1e-9"]) == 2
    assert "more than the 1e-09 h bound" in _one_error(capsys)
    assert main([*TRAIN, "--out", str(tmp_path / "o")]) == 0
    for bad in ("0", "-1", "inf", "nan", "x"):
        assert main([*TRAIN, "--out", str(tmp_path / "o"), "--max-hours", bad]) == 2
        assert "--max-hours" in _one_error(capsys)


@pytest.mark.parametrize("argv", [
    ["--attack", "square", "--queries", str(10**12)],
    ["--attack", "autoattack", "--queries", str(10**12)],
    ["--attack", "pgd", "--steps", str(10**9)],
    ["--attack", "pgd", "--restarts", str(10**9)],
    ["--attack", "apgd-t", "--steps", str(10**8)],
    ["--attack", "deepfool", "--steps", str(10**10)],
    ["--attack", "fgsm", "--eps", ",".join(f"{i / 15_000:.6f}" for i in range(15_000))],
    ["--attack", "pgd", "--eps", ",".join(f"{i / 1000:.4f}" for i in range(1000)), "--steps", "100000"],
])
def test_evaluate_refuses_unbounded_work(argv: list[str], checkpoint: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    assert main(["evaluate", str(checkpoint), "--eps", "0.1", *argv]) == 2
    line = _one_error(capsys)
    assert "--max-hours" in line or "more than the 1,000 allowed" in line
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize("argv", [
    ["--svd-keep", ",".join(f"{(i + 1) / 10_000:.4f}" for i in range(10_000))],
    ["--prune-keep", ",".join(f"{(i + 1) / 10_000:.4f}" for i in range(10_000))],
    ["--svd-keep", "0.5,1", "--steps", str(10**9)],
    ["--svd-keep", ",".join(f"{(i + 1) / 1000:.3f}" for i in range(1000)), "--per-layer", "--steps", "1000000"],
])
def test_intervene_refuses_unbounded_work(argv: list[str], checkpoint: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    assert main(["intervene", str(checkpoint), "--eps", "0.1", *argv]) == 2
    line = _one_error(capsys)
    assert "--max-hours" in line or "more than the 1,000 allowed" in line
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize("change", [
    {"train": {"epochs": 1, "method": {"name": "pgd-adv", "steps": 10**9}}},
    {"train": {"epochs": 1, "method": {"name": "trades", "steps": 10**9}}},
    {"train": {"epochs": 10**9}},
    {"evaluation": {"n": 16, "attacks": [{"attack": "autoattack", "epsilons": [0.1], "options": {"n_queries": 10**12}}]}},
    {"evaluation": {"n": 16, "attacks": [{"attack": "pgd", "epsilons": [0.1], "options": {"steps": 10**10}}]}},
    {"evaluation": {"n": 16, "attacks": [{"attack": "fgsm", "epsilons": list(range(15_000))}]}},
    {"evaluation": {"n": 16, "interventions": [{"kind": "svd", "keeps": [(i + 1) / 10_000 for i in range(10_000)]}]}},
    {"evaluation": {"n": 16, "interventions": [{"kind": "svd", "keeps": [1.0], "options": {"steps": 10**10}}]}},
    {"evaluation": {"n": 16, "deepfool": True, "deepfool_options": {"max_iter": 10**10}}},
])
def test_sweep_refuses_unbounded_work_from_a_study_file(change: dict[str, Any], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**STUDY, **change}))
    for extra in (["--dry-run"], []):
        start = time.perf_counter()
        assert main(["sweep", str(path), "--out", str(tmp_path / "out"), *extra]) == 2
        line = _one_error(capsys)
        assert "--max-hours" in line or "more than the 1,000 allowed" in line
        assert time.perf_counter() - start < 60
    assert not (tmp_path / "out").exists()


def test_the_sweep_estimate_sums_over_the_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each run alone fits the bound, all of them together do not."""
    one = run_work(expand(study_from_dict(STUDY))[0]).hours
    study = {**STUDY, "seeds": list(range(40))}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    bound = f"{one * 20:.3e}"
    assert main(["sweep", str(path), "--dry-run", "--max-hours", bound]) == 2
    assert "40 runs" in _one_error(capsys)
    assert main(["sweep", str(path), "--dry-run", "--max-hours", f"{one * 41:.3e}"]) == 0
    assert main(["sweep", str(path), "--dry-run", "--max-hours", bound, "--workers", "2"]) == 0


def test_the_bound_is_never_read_from_a_study_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for key in ("max_hours", "max-hours"):
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump({**STUDY, key: 10**9}))
        assert main(["sweep", str(path), "--dry-run"]) == 2
        assert "unknown key" in _one_error(capsys)


# -- the run cap ---------------------------------------------------------------------------------
def test_a_study_cannot_raise_its_own_run_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ~300-byte file with max_runs 10¹² beside a 10⁸-run grid is refused at once, in bounded
    memory: the grid is counted, never expanded."""
    grid = {f"train.{k}": list(range(1, 11)) for k in ("epochs", "batch_size", "lr_step_epochs")}
    grid |= {"evaluation.n": list(range(1, 11)), "evaluation.batch_size": list(range(1, 11))}
    grid |= {"train.lr": [0.1 * i for i in range(1, 11)], "train.momentum": [0.05 * i for i in range(10)]}
    grid |= {"train.eval_batch_size": list(range(1, 11))}
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "grid": grid, "max_runs": 10**12}, default_flow_style=True))
    assert path.stat().st_size < 1000
    tracemalloc.start()
    start = time.perf_counter()
    try:
        assert main(["sweep", str(path), "--dry-run"]) == 2
        assert "100,000,000 runs, more than max_runs = 5,000" in _one_error(capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 60 and peak < 50 * 2**20


def test_only_the_command_line_raises_the_run_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = {**STUDY, "grid": {"train.lr": [0.01, 0.02, 0.03]}, "seeds": [0, 1]}  # 6 runs
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["sweep", str(path), "--dry-run", "--max-runs", "5"]) == 2
    assert "6 runs, more than max_runs = 5" in _one_error(capsys)
    assert main(["sweep", str(path), "--dry-run", "--max-runs", "6"]) == 0
    path.write_text(yaml.safe_dump({**study, "max_runs": 4}))  # the study lowers the cap
    assert main(["sweep", str(path), "--dry-run", "--max-runs", "100"]) == 2
    assert "more than max_runs = 4" in _one_error(capsys)
    path.write_text(yaml.safe_dump({**study, "max_runs": 10**9}))  # ... and cannot raise it
    assert main(["sweep", str(path), "--dry-run", "--max-runs", "5"]) == 2
    assert "more than max_runs = 5" in _one_error(capsys)
    for bad in ("0", "-3", "x", "1.5"):
        assert main(["sweep", str(path), "--dry-run", "--max-runs", bad]) == 2
        assert "--max-runs" in _one_error(capsys)


def test_reproduce_bounds_its_seeds_and_its_work(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    for seeds in (str(10**12), str(2**64), "5001"):
        assert main(["reproduce", "--scale", "smoke", "--seeds", seeds, "--dry-run"]) == 2
        assert "--seeds" in _one_error(capsys)
    assert time.perf_counter() - start < 60
    assert main(["reproduce", "--scale", "full", "--dry-run"]) == 2  # ≈ 200 CPU hours here
    assert "--max-hours" in _one_error(capsys)
    assert main(["reproduce", "--scale", "full", "--dry-run", "--max-hours", "1000"]) == 0
    assert main(["reproduce", "--scale", "small", "--dry-run"]) == 0


# -- seeds ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [2**64, -(2**64), MAX_SEED + 1, -1])
def test_seeds_are_range_checked_in_every_command(seed: int, checkpoint: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["evaluate", str(checkpoint), "--eps", "0.1", "--n", "8", "--seed", str(seed)],
        ["evaluate", str(checkpoint), "--eps", "0.1", "--n", "8", "--attack", "autoattack", "--seed", str(seed)],
        ["intervene", str(checkpoint), "--eps", "0.1", "--n", "8", "--svd-keep", "1", "--seed", str(seed)],
        [*TRAIN, "--out", str(tmp_path / "o"), "--seed", str(seed)],
    ):
        assert main(argv) == 2
        assert "seed" in _one_error(capsys)
    for change in ({"seeds": [seed]},
                   {"evaluation": {"n": 8, "attacks": [{"attack": "pgd", "epsilons": [0.1], "options": {"seed": seed}}]}},
                   {"evaluation": {"n": 8, "interventions": [{"kind": "svd", "keeps": [1.0], "options": {"seed": seed}}]}}):
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump({**STUDY, **change}))
        assert main(["sweep", str(path), "--dry-run"]) == 2
        assert "seed" in _one_error(capsys)


def test_the_largest_seed_is_accepted(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(checkpoint), "--eps", "0.1", "--n", "8", "--attack", "fgsm",
                 "--no-sanity", "--seed", str(MAX_SEED)]) == 0


# -- CIFAR-10: a batch cannot declare more than a batch ---------------------------------------------
class _StrideZero:
    """Pickles as ``numpy.ndarray(shape, dtype, buffer, 0, strides 0)``: a view of a few bytes
    that declares ``shape``."""

    def __init__(self, shape: tuple[int, ...], dtype: str) -> None:
        self.shape, self.dtype = shape, dtype

    def __reduce__(self) -> tuple[Any, ...]:
        item = np.dtype(self.dtype).itemsize
        return (np.ndarray, (self.shape, np.dtype(self.dtype), b"\0" * item, 0, (0,) * len(self.shape)))


@pytest.mark.parametrize("rows", [20_000, 10_001])
def test_a_stride_zero_cifar_batch_is_refused(rows: int, tmp_path: Path) -> None:
    """A tiny file whose arrays are stride-0 views declaring more than a batch (10,000 × 3,072)
    is refused before anything is materialized (the old reader copied them: 7-40 GB for larger
    declarations)."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {"data": _StrideZero((rows, 3072), "u1"), "labels": _StrideZero((rows,), "i8")}
    raw = pickle.dumps(batch, protocol=2)
    assert len(raw) < 400
    (folder / "test_batch").write_bytes(raw)
    with pytest.raises(DataError, match="test_batch"):
        load_dataset("cifar10", "test", tmp_path)


def test_a_direct_ndarray_call_is_refused_even_when_small(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {"data": _StrideZero((4, 3072), "u1"), "labels": [0, 1, 2, 3]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match="not a valid CIFAR-10 python batch"):
        load_dataset("cifar10", "test", tmp_path)


def test_a_real_cifar_batch_still_loads(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (8, 3072), dtype=np.uint8)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": list(range(8))}, protocol=2))
    x, y = load_dataset("cifar10", "test", tmp_path)
    assert tuple(x.shape) == (8, 3, 32, 32) and y.tolist() == list(range(8))
    np.testing.assert_array_equal((x.numpy() * 255).round().astype(np.uint8).reshape(8, -1), data)


# -- dry runs write nothing ----------------------------------------------------------------------
def _snapshot(*roots: Path) -> dict[str, bytes]:
    """Every file under ``roots``: path → its bytes (folders as b'<dir>')."""
    out: dict[str, bytes] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames:
                out[os.path.join(dirpath, name)] = b"<dir>"
            for name in filenames:
                path = os.path.join(dirpath, name)
                out[path] = Path(path).read_bytes()
    return out


def test_dry_runs_write_nothing(tmp_path: Path) -> None:
    """``sweep --dry-run`` and ``reproduce --dry-run`` beside an existing
    database: no -wal/-shm, no byte changed in the folder or in $HOME (no matplotlib cache)."""
    home, out = tmp_path / "home", tmp_path / "out"
    home.mkdir()
    study = {**STUDY, "grid": {"train.lr": [0.01, 0.02]}}
    path = out / "s.yaml"
    out.mkdir()
    path.write_text(yaml.safe_dump(study))
    with ResultsStore(out / "results.sqlite") as store:  # a WAL database with runs registered
        store.register(expand(study_from_dict(study)))
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")}
    env["HOME"] = str(home)
    before = _snapshot(out, home)
    assert sorted(Path(p).name for p in before) == ["results.sqlite", "s.yaml"]
    for argv in (["sweep", str(path), "--out", str(out), "--dry-run"],
                 ["reproduce", "--scale", "smoke", "--out", str(out), "--dry-run"],
                 ["reproduce", "--scale", "smoke", "--out", str(out), "--dry-run"]):
        done = subprocess.run([sys.executable, "-m", "rankrobust", *argv], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "dry run, nothing written" in done.stdout
        assert _snapshot(out, home) == before, argv


# -- one reader, one rule ------------------------------------------------------------------------
SRC = Path(__file__).parent.parent / "src" / "rankrobust"


def test_every_yaml_read_goes_through_the_hardened_loader() -> None:
    """Only ``strict_yaml`` calls PyYAML's loaders; everything else reads YAML through it."""
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if p.name != "strict_yaml.py"
                 and any(call in p.read_text() for call in ("yaml.safe_load", "yaml.load(", "yaml.full_load",
                                                              "yaml.unsafe_load", "SafeLoader"))]
    assert offenders == []


def test_max_seed_is_defined_once() -> None:
    definitions = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "MAX_SEED =" in p.read_text()]
    assert definitions == ["configuration.py"]


def test_presets_and_set_values_are_read_by_the_hardened_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    from rankrobust import strict_yaml
    from rankrobust.cli.train import parse_set
    from rankrobust.experiments.study import load_preset

    calls: list[str] = []
    real = strict_yaml.load_yaml

    def spy(text: str, where: str) -> Any:
        calls.append(where)
        return real(text, where)

    monkeypatch.setattr(strict_yaml, "load_yaml", spy)
    monkeypatch.setattr("rankrobust.experiments.study_file.load_yaml", spy)
    load_preset("smoke")
    assert parse_set(["layers=true", "rank=*x"]) == {"layers": True, "rank": "*x"}
    assert calls == ["preset smoke", "--set", "--set"]
