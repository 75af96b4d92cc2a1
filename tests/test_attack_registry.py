"""The attack registry: every consumer reads it, so an attack defined in one file (here, in this
test) is usable by `rankrobust evaluate`, a study, the report and the masking checks."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from rankrobust.attacks import ATTACKS, FORWARD, get_attack, register_attack
from rankrobust.attacks.base import AttackResult, predict
from rankrobust.attacks.registry import NORMS, attack_label, by_strength
from rankrobust.errors import ConfigError

NAME = "test-random-sign"
LABEL = "Random sign (test)"


# --- an attack defined here, registered here, used everywhere ------------------------------------
def random_sign(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, epsilons: list[float],
                norm: str, generator: torch.Generator, tries: int = 1) -> AttackResult:
    """ℓ∞ random corners: success at ε iff one of ``tries`` points clip(x + ε·s), s a random sign
    pattern per input and try (drawn once, shared by every ε), changes the label."""
    if isinstance(tries, bool) or not isinstance(tries, int) or tries < 1:
        raise ConfigError(f"tries must be an integer ≥ 1, got {tries!r}")
    signs = torch.randint(0, 2, (tries, *x.shape), generator=generator).to(x) * 2 - 1  # (T, B, ...)
    success = torch.zeros(len(epsilons), len(x), dtype=torch.bool, device=x.device)
    for k, eps in enumerate(epsilons):
        for t in range(tries):
            success[k] |= predict(model, (x + eps * signs[t]).clamp(0, 1)) != labels
    return AttackResult(list(epsilons), norm, success, None)


@pytest.fixture
def plugin() -> Iterator[str]:
    register_attack(NAME, label=LABEL, norms=("inf",), strength=5, random=True,
                    passes=lambda k, classes, o: k * o["tries"] * FORWARD,
                    description="test-only: random ±ε corners")(random_sign)
    try:
        yield NAME
    finally:
        ATTACKS.pop(NAME, None)


def _checkpoint(tmp_path: Path) -> Path:
    from rankrobust.checkpoint import save_checkpoint
    from rankrobust.models import ModelSpec

    spec = ModelSpec("mlp", (1, 16, 16), 4, {"hidden": [8]})  # synthetic: 4 classes, 16×16
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "ck", spec.build(), spec, {"dataset": "synthetic"})


def test_the_registered_attack_runs_through_evaluate(
    plugin: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rankrobust.cli.main import main

    ck = _checkpoint(tmp_path)
    argv = ["evaluate", str(ck), "--attack", plugin, "--eps", "0,0.2,1", "--n", "16",
            "--no-sanity", "--no-progress", "--format", "json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["attack"] for r in rows] == [plugin] * 3
    assert rows[0]["fooling_ratio"] == 0.0  # ε = 0 changes nothing
    assert rows[0]["settings"] == {"attack": plugin, "norm": "inf", "seed": 0, "tries": 1}
    # a flag the attack takes no option for is refused in one line, naming who takes it
    assert main([*argv[:-2], "--steps", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--steps applies to --attack pgd" in err and plugin in err
    assert main([*argv, "--norm", "2"]) == 2  # ℓ∞ only: refused, not run in another norm
    assert "supports norm inf, not '2'" in capsys.readouterr().err
    # `evaluate --help` names it, and `rankrobust attacks` lists it with its options
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert plugin in "".join(capsys.readouterr().out.split())  # argparse wraps at hyphens
    assert main(["attacks", "--format", "json"]) == 0
    listed = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert listed[plugin]["options"] == {"tries": 1} and listed[plugin]["norms"] == ["inf"]
    assert listed["apgd-t"]["options"]["n_targets"] == 9 and list(listed)[:2] == ["fgsm", "pgd"]


def test_the_registered_attack_runs_in_a_study_and_reaches_the_report(
    plugin: str, tmp_path: Path
) -> None:
    from rankrobust.experiments import ResultsStore, load_study, run_sweep
    from rankrobust.report import build_report
    from rankrobust.report.figures_robustness import _attacks

    path = tmp_path / "study.yaml"
    path.write_text(f"""name: plugin-attack
dataset: synthetic
model: mlp
model_options: {{hidden: [8]}}
train: {{epochs: 1, device: cpu}}
evaluation:
  n: 16
  batch_size: 16
  sanity_checks: [{plugin}]
  attacks:
    - {{attack: {plugin}, epsilons: [0.0, 0.2, 0.5], options: {{tries: 2}}}}
""")
    study = load_study(path)
    summary = run_sweep(study, out=tmp_path, workers=1, progress=False)
    assert summary.exit_code == 0
    with ResultsStore(tmp_path / "results.sqlite") as store:
        rob = store.robustness()
        runs = store.runs()
    assert set(rob["attack"]) == {plugin} and len(rob) == 3
    assert json.loads(rob["options"].iloc[0]) == {"tries": 2}
    assert isinstance(json.loads(runs["warnings"].iloc[0]), list)  # the masking checks ran
    assert _attacks(rob) == [(plugin, "inf")]  # the robustness figure draws it
    report = build_report(tmp_path / "results.sqlite", tmp_path / "report")
    md = report.with_suffix(".md").read_text()
    assert f"{LABEL} ℓ∞" in md  # the tables name it by its registered label


def test_the_masking_checks_run_on_the_registered_attack(plugin: str) -> None:
    from rankrobust.robustness import fooling_ratio_curve, sanity_checks

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(12, 1, 4, 4), torch.randint(0, 3, (12,))
    curve = fooling_ratio_curve(model, (x, y), plugin, [0.1, 0.4], seed=0, tries=3)
    assert list(curve["attack"]) == [plugin, plugin]
    warnings = sanity_checks(model, (x, y), curve, seed=0, steps=3, queries=10)
    assert all(isinstance(w, str) for w in warnings)
    # check 1 (iterative ≥ single-step) is not asked of an attack the registry does not declare
    # iterative: no warning compares it with fgsm
    assert not any(w.startswith(plugin) and "fgsm" in w for w in warnings)


def test_the_work_estimate_uses_the_registered_cost(plugin: str) -> None:
    from rankrobust.work import attack_passes, curve_passes

    assert attack_passes(plugin, 4, 10, {}) == 4 * 1 * FORWARD
    assert attack_passes(plugin, 4, 10, {"tries": 5}) == 4 * 5 * FORWARD
    assert curve_passes(plugin, 4, 10, {"tries": 5}, False) == 4 * 5 * FORWARD + FORWARD


# --- one clear error, with a did-you-mean -------------------------------------------------------
def test_unknown_names_and_options_are_refused_with_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rankrobust.cli.main import main
    from rankrobust.experiments import expand, study_from_dict
    from rankrobust.robustness import fooling_ratio_curve

    with pytest.raises(ConfigError, match=r"unknown attack 'apgd-c' \(did you mean 'apgd-ce'\?\)"):
        get_attack("apgd-c")
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    data = (torch.rand(3, 1, 2, 2), torch.tensor([0, 1, 0]))
    with pytest.raises(ConfigError, match=r"unknown option 'stpes' of attack 'pgd' \(did you "
                       r"mean 'steps'\?\); pgd takes: steps, step_size"):
        fooling_ratio_curve(model, data, "pgd", [0.1], stpes=3)
    base = {"name": "s", "dataset": "synthetic", "model": "mlp"}
    for attack, options, needle in [
        ("pdg", {}, "evaluation.attacks[0].attack: unknown attack 'pdg' (did you mean 'pgd'?)"),
        ("square", {"n_querys": 9}, "attacks[0].options.n_querys: unknown option 'n_querys' of "
         "attack 'square' (did you mean 'n_queries'?)"),
        ("apgd-ce", {"n_targets": 3}, "attacks[0].options.n_targets: only apgd-t, autoattack take "
         "it, not apgd-ce"),
    ]:
        spec = {"attack": attack, "epsilons": [0.1], "options": options}
        with pytest.raises(ConfigError) as info:
            expand(study_from_dict({**base, "evaluation": {"attacks": [spec]}}))
        assert needle in str(info.value) and "\n" not in str(info.value)
    assert main(["evaluate", str(_checkpoint(tmp_path)), "--eps", "0.1", "--attack", "fgms"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(did you mean 'fgsm'?)" in err


def test_registration_is_checked() -> None:
    def runner(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, epsilons: list[float],
               norm: str, generator: torch.Generator, level: int = 1) -> AttackResult:
        raise AssertionError("never run")

    def cost(k: float, c: int, o: Any) -> float:
        return k

    with pytest.raises(ValueError, match="already registered"):
        register_attack("pgd", label="PGD again", passes=cost)(runner)
    with pytest.raises(ValueError, match="norms"):
        register_attack("t-norms", label="x", passes=cost, norms=("1",))(runner)
    with pytest.raises(ValueError, match="nested budgets"):
        register_attack("t-points", label="x", passes=cost, per_point=True)(runner)
    with pytest.raises(ValueError, match="curve setting"):
        register_attack("t-seed", label="x", passes=cost, options={"seed": 0})(runner)

    def wrong(model: nn.Module, x: torch.Tensor, epsilons: list[float]) -> AttackResult:
        raise AssertionError("never run")

    with pytest.raises(ValueError, match="takes \\(model, x, labels"):
        register_attack("t-args", label="x", passes=cost)(wrong)
    assert not {"t-norms", "t-points", "t-seed", "t-args"} & set(ATTACKS)


# --- the registry is consistent -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "square",
                                  "autoattack", "deepfool"])
def test_every_built_in_attack_declares_what_consumers_need(name: str) -> None:
    a = get_attack(name)
    assert a.label and a.description and set(a.norms) <= set(NORMS)
    cost = a.passes(3.0, 10, a.resolved({}))
    assert math.isfinite(cost) and cost > 0
    assert attack_label(name) == a.label
    # the options and defaults are those of the attack function the runner calls
    import rankrobust.attacks as attacks

    function = getattr(attacks, name.split("-")[0])
    params = inspect.signature(function).parameters
    for key, default in a.options.items():
        assert params[key].default == default, (name, key)
    assert a.nests  # every built-in nests its budgets (per_point needs it)
    assert a.ensemble == (name == "autoattack")


def test_strength_order_and_labels() -> None:
    assert by_strength() == ["autoattack", "apgd-t", "apgd-ce", "pgd", "fgsm"]
    assert attack_label("fgsm", "2") == "FGM ℓ2" and attack_label("fgsm", "inf") == "FGSM ℓ∞"
    assert attack_label("apgd-t", "inf") == "APGD-T ℓ∞"
    assert attack_label("not-registered", "inf") == "not-registered ℓ∞"


@pytest.mark.parametrize(("attack", "budgets", "classes", "options", "passes"), [
    ("fgsm", 4, 10, {}, 1.0 + 4 * FORWARD),
    ("pgd", 3, 10, {}, 3 * 1 * (40 + FORWARD)),
    ("pgd", 2, 10, {"steps": 7, "restarts": 2}, 2 * 2 * (7 + FORWARD)),
    ("apgd-ce", 2, 10, {}, 2 * 100.0),
    ("apgd-t", 2, 4, {}, 2 * 100.0 * 3),  # min(n_targets = 9, C − 1 = 3) targets
    ("square", 2, 10, {"n_queries": 30}, 2 * 30 * FORWARD),
    ("autoattack", 2, 10, {}, 2 * (100.0 + 100.0 * 9 + 2500 * FORWARD)),
    ("autoattack", 1, 10, {"members": ["apgd-ce"], "steps": 5}, 5.0),
    ("deepfool", 5, 10, {}, 50.0 * 10),
    ("pgd", 1, 10, {"steps": "x"}, 1 * 1 * (1 + FORWARD)),  # not a count: the attack refuses it
])
def test_work_costs_are_the_documented_formulas(attack: str, budgets: int, classes: int,
                                                options: dict[str, Any], passes: float) -> None:
    from rankrobust.work import attack_passes

    assert attack_passes(attack, budgets, classes, options) == pytest.approx(passes, rel=1e-15)
