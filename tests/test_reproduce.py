"""``rankrobust reproduce``: the built-in study's presets, and a smoke run end to end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rankrobust.cli.main import main
from rankrobust.errors import ConfigError
from rankrobust.experiments.grid import expand, run_id
from rankrobust.experiments.study import SCALES, reproduce_study
from rankrobust.methods import METHODS

# Every registered method is in every preset except product-l1 (fully connected models only);
# the study-v2 methods only in paper-v2.
V2_METHODS = {"fgsm-rs", "weight-decay", "spectral-norm"}
PRESET_METHODS = set(METHODS) - {"product-l1"} - V2_METHODS


@pytest.mark.parametrize("scale", SCALES)
def test_every_preset_expands_to_the_full_design(scale: str) -> None:
    study = reproduce_study(scale)
    runs = expand(study)
    v2 = scale == "paper-v2"
    assert {r.method for r in runs} == PRESET_METHODS | (V2_METHODS if v2 else set())
    assert {r.model for r in runs} == {"mlp", "lenet5-wide" if v2 else "lenet5"}
    assert all(r.train.track_structure for r in runs)
    for r in runs:
        attacks = {(a.attack, a.norm) for a in r.evaluation.attacks}
        expected = {("fgsm", "inf"), ("fgsm", "2"), ("pgd", "inf")}
        if scale != "smoke":  # AutoAttack: the ε grid on small and paper, three ε on full
            expected.add(("autoattack", "inf"))
        if scale in ("small", "paper"):  # #18: the ε-grid AutoAttack at ¼, ½, ¾, 1 × ε_train
            (aa,) = [a for a in r.evaluation.attacks if a.attack == "autoattack"]
            top = max(aa.epsilons)
            assert aa.options.get("grid") is True
            assert sorted(aa.epsilons) == pytest.approx([top / 4, top / 2, 3 * top / 4, top])
            if r.method in ("pgd-adv", "fgsm-adv", "trades"):
                assert top == pytest.approx(r.train.method.eps)  # type: ignore[attr-defined]
            for item in r.evaluation.interventions if r.method == "natural" else ():
                # #18 item 5: a dense keep grid where C5 truncates (natural nets)
                dense = sorted(k for k in item.keeps if k >= 0.84)
                assert dense[0] == 0.84 and dense[-1] == 1.0
                assert max(b - a for a, b in zip(dense, dense[1:], strict=False)) <= 0.02 + 1e-9
        assert attacks == expected
        assert r.evaluation.deepfool and r.evaluation.spectra
    # every swept method has a grid (at least one point; small/full have ≥ 3 λ's, ≥ 2 ranks;
    # paper, sized for 2 cores, 2 λ's and one rank)
    for method in {r.method for r in runs}:
        grid = {tuple(r.train.method.swept_values().items())
                for r in runs if r.method == method and r.model == "mlp"}
        if not METHODS[method].swept:
            assert len(grid) == 1
        elif scale == "paper":
            assert len(grid) >= (1 if method == "lowrank" else 2), method
        elif scale == "paper-v2":  # λ paths: 5 points for the key comparison and its control
            assert len(grid) >= {"lowrank": 1, "l1+nuclear": 5, "weight-decay": 5}.get(method, 3)
        elif scale != "smoke":
            assert len(grid) >= (2 if method == "lowrank" else 3), method
    if not v2:  # paper-v2 gives its key comparisons more seeds (test_paper_v2_...)
        per_config = len(runs) // len(study.seeds)
        assert len(runs) == per_config * len(study.seeds)


def test_paper_preset_budgets_per_dataset() -> None:
    """Fashion-MNIST trains and attacks at a third of the MNIST-scale ε (0.1, with the
    interventions' budget too) on 55,000 images; MNIST-5k keeps ε 0.3 with its own overrides."""
    fashion = expand(reproduce_study("paper"))
    assert {r.dataset for r in fashion} == {"fashion-mnist"} and len({r.seed for r in fashion}) >= 3
    for run in fashion:
        assert run.evaluation.n >= 1000 and run.train.validation_size == 5000
        aa = [a for a in run.evaluation.attacks if a.attack == "autoattack"]
        assert [list(a.epsilons) for a in aa] == [pytest.approx([0.025, 0.05, 0.075, 0.1])]
        assert max(next(a for a in run.evaluation.attacks if a.attack == "pgd").epsilons) == 0.15
        if run.method in ("pgd-adv", "fgsm-adv", "trades"):
            assert run.train.method.eps == pytest.approx(0.1)  # type: ignore[attr-defined]
            assert run.train.method.warmup_epochs >= 1  # type: ignore[attr-defined]
        for intervention in run.evaluation.interventions:
            assert intervention.eps == pytest.approx(0.1)
    mnist = expand(reproduce_study("paper", "mnist5k"))
    pgd = next(r for r in mnist if r.method == "pgd-adv")
    assert pgd.train.method.eps == pytest.approx(0.3)  # type: ignore[attr-defined]
    assert pgd.train.validation_size == 500 and pgd.train.epochs > fashion[0].train.epochs
    assert pgd.evaluation.interventions[0].eps == pytest.approx(0.3)


def test_small_preset_is_mnist5k_with_three_seeds_and_cifar_swaps_the_cnn() -> None:
    small = reproduce_study("small")
    assert small.base["dataset"] == "mnist5k" and small.seeds == (0, 1, 2)
    cifar = expand(reproduce_study("small", "cifar10", seeds=1))
    assert {r.model for r in cifar} == {"mlp", "cnn-small"}
    for name in ("pgd-adv", "fgsm-adv", "trades"):  # every training budget is rescaled
        run = next(r for r in cifar if r.method == name)
        assert run.train.method.eps == pytest.approx(0.1 * 8 / 255 / 0.3, rel=1e-4)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="unknown scale"):
        reproduce_study("huge")
    with pytest.raises(ConfigError, match="seeds"):
        reproduce_study("smoke", seeds=0)



@pytest.mark.slow
def test_reproduce_smoke_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "smoke"
    code = main(["reproduce", "--scale", "smoke", "--out", str(out), "--workers", "1",
                 "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = out / "report" / "report.html"
    assert printed.strip().splitlines()[-1] == f"report: {report}"
    claims = pd.read_csv(out / "report" / "claims.csv")
    assert set(claims["claim"]) == {"C1", "C2", "C3", "C4", "C5"}
    assert set(claims["verdict"]) == {"– (pipeline check)"}  # synthetic data: no verdicts
    figures = {p.name for p in (out / "report" / "figures").glob("*.png")}
    assert len(figures) == 9 and {"interventions.png", "training_curves.png", "frontier.png"} <= figures
    # The report only reads the database: rebuilding it gives the same claims.
    assert main(["report", str(out / "results.sqlite"), "--out", str(tmp_path / "again")]) == 0
    again = pd.read_csv(tmp_path / "again" / "claims.csv")
    pd.testing.assert_frame_equal(claims, again)
    # Resumable: a second reproduce skips every finished run.
    assert main(["reproduce", "--scale", "smoke", "--out", str(out), "--workers", "1",
                 "--no-progress"]) == 0
    assert "32 already done" in capsys.readouterr().out


@pytest.mark.parametrize("scale", SCALES)
def test_study_to_dict_is_the_inverse_of_study_from_dict(scale: str) -> None:
    from rankrobust.experiments.study_config import study_from_dict, study_to_dict

    study = reproduce_study(scale)
    again = study_from_dict(study_to_dict(study))
    assert again == study
    assert [run_id(c) for c in expand(again)] == [run_id(c) for c in expand(study)]


def test_reproduce_dry_run_prints_the_study_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rankrobust.experiments.study_config import study_from_dict
    from rankrobust.experiments.study_file import parse_study_yaml

    out = tmp_path / "o"
    argv = ["reproduce", "--scale", "paper", "--dataset", "mnist5k", "--seeds", "2", "--out",
            str(out), "--dry-run"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    head, _, text = printed.partition("# the study, as a file for `rankrobust sweep`:\n")
    study = reproduce_study("paper", "mnist5k", 2)
    runs = expand(study)
    assert head.startswith(f"study {study.name}: {len(runs)} runs; dry run, nothing written\n")
    parsed = study_from_dict(parse_study_yaml(text, "printed study"))
    assert [run_id(c) for c in expand(parsed)] == [run_id(c) for c in runs]
    assert parsed.base["train"]["epochs"] == 30  # the dataset's overrides are in what is printed
    assert not out.exists()


def test_paper_v2_preset_design() -> None:
    """Matched capacity, 5 seeds where the key comparisons are, log-spaced λ paths, converged
    adversarial training with a 3-epoch ramp and validation-selected epochs (issue #19)."""
    from rankrobust.models import parameter_count

    runs = expand(reproduce_study("paper-v2"))
    fc, cnn = (parameter_count(m, (1, 28, 28), 10, **({"hidden": [150, 100]} if m == "mlp" else {}))
               for m in ("mlp", "lenet5-wide"))
    assert abs(cnn / fc - 1) <= 0.15
    seeds: dict[tuple[str, str], set[int]] = {}
    for run in runs:
        seeds.setdefault((run.model, run.method), set()).add(run.seed)
        assert run.dataset == "fashion-mnist" and run.train.validation_size == 5000
        assert run.train.train_size >= 20_000  # cut 3: a fixed stratified subset, ≥ 20,000
        method = run.train.method
        if method.kind == "adversarial":
            assert run.train.select_epoch == "val_robust_acc"
            assert method.warmup_epochs >= 3 and method.eps == pytest.approx(0.1)  # type: ignore[attr-defined]
            assert run.train.epochs >= 15
        else:
            assert run.train.select_epoch == "last" and run.train.epochs >= 20
    for (_, method), got in seeds.items():
        key = method in ("natural", "l1+nuclear", "weight-decay", "pgd-adv")
        assert len(got) == (5 if key else 3), method
    for method, key in (("l1+nuclear", "lambda_l1"), ("weight-decay", "lambda_wd")):
        path = sorted({getattr(r.train.method, key) for r in runs if r.method == method})
        ratios = [b / a for a, b in zip(path, path[1:], strict=False)]
        assert len(path) >= 5 and max(ratios) / min(ratios) < 1.2  # log-spaced
    mnist = expand(reproduce_study("paper-v2", "mnist5k"))
    pgd = next(r for r in mnist if r.method == "pgd-adv")
    assert pgd.train.method.eps == pytest.approx(0.3)  # type: ignore[attr-defined]
    assert pgd.train.method.steps >= 10 and pgd.train.method.warmup_epochs >= 5  # type: ignore[attr-defined]
    strongest = max(r.train.method.lambda_l1 for r in mnist if r.method == "l1+nuclear")  # type: ignore[attr-defined]
    assert strongest > max(r.train.method.lambda_l1 for r in runs if r.method == "l1+nuclear")  # type: ignore[attr-defined]
    # --seeds N overrides every variant's own seeds
    assert {r.seed for r in expand(reproduce_study("paper-v2", seeds=2))} == {0, 1}


def test_paper_v2_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--scale", "paper-v2", "--out", str(tmp_path / "o"), "--dry-run",
                 "--max-hours", "48"]) == 0  # the bound its header states
    head = capsys.readouterr().out.partition("# the study")[0]
    runs = expand(reproduce_study("paper-v2"))
    assert head.startswith(f"study reproduce-paper-v2-fashion-mnist: {len(runs)} runs; dry run")
    assert not (tmp_path / "o").exists()


def test_variant_override_keys_need_an_existing_variant() -> None:
    from rankrobust.experiments.study import _apply_overrides

    data = {"variants": [{"name": "a", "train": {"epochs": 1}}],
            "datasets": {"x": {"variants.a.train.epochs": 4, "train.lr": 0.1}}}
    _apply_overrides(data, "x")
    assert data == {"variants": [{"name": "a", "train": {"epochs": 4}}], "train": {"lr": 0.1}}
    with pytest.raises(ConfigError, match="no variant 'b'"):
        _apply_overrides({"variants": [], "datasets": {"x": {"variants.b.train": {}}}}, "x")


def test_stacking_options_are_gone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Stacked training was removed (issue #20): ``--stack``/``--max-stack`` are refused in one
    line, exit 2, nothing written."""
    for argv in (["reproduce", "--scale", "smoke", "--out", str(tmp_path / "o"), "--stack"],
                 ["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"), "--max-stack", "3"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "unrecognized arguments: --" in err[0]
    assert not (tmp_path / "o").exists()
