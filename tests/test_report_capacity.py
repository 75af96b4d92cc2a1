"""C3 per capacity-matched FC ↔ CNN pair: parameter counts, pairing, the not-matched message."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from rankrobust.report.capacity import (
    MATCH_TOLERANCE,
    capacity_pairs,
    leftover_notes,
    model_sizes,
    models_table,
    run_parameters,
)
from rankrobust.report.claims import NOT_TESTABLE, claim_verdicts, evaluate_claims

MLP = 784 * 150 + 150 + 150 * 100 + 100 + 100 * 10 + 10  # 133,860: the MLP 150-100 on 28×28


def _lenet(c1: int, c2: int, f1: int, f2: int) -> int:
    """LeNet-5 on 1×28×28 (padding 2: 5×5 kernels, two 2×2 pools → c2·5·5 flattened), 10 classes."""
    return (c1 * 25 + c1) + (c2 * c1 * 25 + c2) + (c2 * 25 * f1 + f1) + (f1 * f2 + f2) + (f2 * 10 + 10)


def _runs(models: dict[str, dict[str, object]], dataset: str = "mnist5k") -> pd.DataFrame:
    return pd.DataFrame([{"run_id": f"{m}-{i}", "dataset": dataset, "model": m,
                          "config": {"dataset": dataset, "model": m, "model_options": o}}
                         for m, o in models.items() for i in range(2)])


def test_parameter_counts_come_from_the_stored_network() -> None:
    runs = _runs({"mlp": {"hidden": [150, 100]}, "lenet5": {}, "lenet5-wide": {}})
    counts = run_parameters(runs).groupby(runs["model"]).first().to_dict()
    assert counts == {"mlp": MLP, "lenet5": _lenet(6, 16, 120, 84),
                      "lenet5-wide": _lenet(9, 24, 180, 126)}
    assert counts["lenet5"] == 61_706 and counts["lenet5-wide"] == 137_914
    # the options a run stored decide its size: a narrower MLP under the same name
    narrow = run_parameters(_runs({"mlp": {"hidden": [10]}}))
    assert (narrow == 784 * 10 + 10 + 10 * 10 + 10).all()
    # a model or dataset the registries do not know: no count (and no partner)
    unknown = run_parameters(_runs({"plugin-net": {}}))
    assert unknown.isna().all()


def test_pairs_are_the_registered_matched_families_one_to_one() -> None:
    runs = _runs({"mlp": {"hidden": [150, 100]}, "mlp-wide": {}, "lenet5": {}, "lenet5-wide": {},
                  "lenet5-wider": {}})
    sizes = model_sizes(runs)
    matched, _ = capacity_pairs(sizes, "mnist5k")
    assert {(p.fc, p.cnn) for p in matched} == {("mlp", "lenet5-wide"), ("mlp-wide", "lenet5-wider")}
    assert all(abs(p.difference) <= MATCH_TOLERANCE for p in matched)
    partner = sizes.set_index("model")["partner"].to_dict()
    assert partner == {"mlp": "lenet5-wide", "lenet5-wide": "mlp", "mlp-wide": "lenet5-wider",
                       "lenet5-wider": "mlp-wide", "lenet5": ""}
    notes = leftover_notes(sizes, ["mnist5k"])
    assert notes == ["C3 (mnist5k): lenet5 (CNN, 61,706 parameters) has no partner within ±15 %: "
                     "left out."]
    table = models_table(sizes).set_index("model")
    assert table.loc["mlp", "parameters"] == "133,860"
    assert table.loc["lenet5-wide", "capacity-matched partner"] == "mlp (CNN +3.0 %)"
    assert table.loc["lenet5", "capacity-matched partner"] == "none within ±15 %"


def test_closest_counts_pair_first_and_a_model_pairs_once() -> None:
    sizes = pd.DataFrame({"dataset": "d", "model": ["fc", "cnn-a", "cnn-b"],
                          "family": ["FC", "CNN", "CNN"], "parameters": [100.0, 110.0, 96.0]})
    matched, others = capacity_pairs(sizes, "d")
    assert [(p.fc, p.cnn) for p in matched] == [("fc", "cnn-b")]  # −4 % beats +10 %
    assert [(p.fc, p.cnn) for p in others] == [("fc", "cnn-a")]
    edge = sizes.assign(parameters=[100.0, 115.0, 84.9])  # +15 % is in, −15.1 % is out
    assert [p.cnn for p in capacity_pairs(edge, "d")[0]] == ["cnn-a"]


def _c3_runs(gains: dict[str, float]) -> pd.DataFrame:
    """natural and ℓ1+nuclear per model, 3 seeds; ℓ1+nuclear's area = natural's + the gain."""
    rows = []
    for model, gain in gains.items():
        for seed in range(3):
            base = 0.4 + 0.01 * seed
            rows += [{"dataset": "d", "model": model, "method": "natural", "seed": seed,
                      "area": base, "erank": 0.5, "esparsity": 0.5},
                     {"dataset": "d", "model": model, "method": "l1+nuclear", "seed": seed,
                      "area": base + gain + 0.001 * seed, "erank": 0.5, "esparsity": 0.5}]
    return pd.DataFrame(rows)


def _sizes(counts: dict[str, float]) -> pd.DataFrame:
    fam = {"mlp": "FC", "mlp-wide": "FC"}
    return pd.DataFrame({"dataset": "d", "model": list(counts),
                         "family": [fam.get(m, "CNN") for m in counts],
                         "parameters": list(counts.values())})


def test_c3_is_scored_per_matched_pair() -> None:
    gains = {"mlp": 0.05, "lenet5-wide": 0.10, "mlp-wide": 0.02, "lenet5-wider": 0.12,
             "lenet5": 0.50}  # lenet5 has no partner: its large gain must not enter C3
    sizes = _sizes({"mlp": 133_860, "lenet5-wide": 137_914, "mlp-wide": 297_710,
                    "lenet5-wider": 309_389, "lenet5": 61_706})
    table = evaluate_claims(_c3_runs(gains), metrics=[("area", -1)], sizes=sizes)
    c3 = table[(table["claim"] == "C3") & (table["role"] == "primary")].set_index("scope")
    assert sorted(c3.index) == ["d · mlp (FC) ↔ lenet5-wide (CNN)",
                                "d · mlp-wide (FC) ↔ lenet5-wider (CNN)"]
    # each pair's effect: (reg − nat) of its CNN − (reg − nat) of its FC network
    assert c3.loc["d · mlp (FC) ↔ lenet5-wide (CNN)", "effect"] == pytest.approx(0.05, abs=1e-12)
    assert c3.loc["d · mlp-wide (FC) ↔ lenet5-wider (CNN)", "effect"] == pytest.approx(0.10, abs=1e-12)
    assert "mlp 133,860 ↔ lenet5-wide 137,914 parameters (CNN +3.0 %)" in \
        c3.loc["d · mlp (FC) ↔ lenet5-wide (CNN)", "note"]
    assert (c3["n"] == 3).all()


def test_c3_without_a_matched_pair_says_so_with_both_counts() -> None:
    sizes = _sizes({"mlp": 133_860, "lenet5": 61_706})  # v1: the CNN is the smaller network
    table = evaluate_claims(_c3_runs({"mlp": 0.02, "lenet5": 0.10}), metrics=[("area", -1)],
                            sizes=sizes)
    c3 = table[table["claim"] == "C3"]
    primary = c3[c3["role"] == "primary"]
    assert len(primary) == 1 and primary["verdict"].iloc[0] == NOT_TESTABLE
    assert math.isnan(primary["effect"].iloc[0])
    note = primary["note"].iloc[0]
    assert note.startswith("not capacity-matched: mlp 133,860 ↔ lenet5 61,706 parameters (CNN -53.9 %)")
    # the unmatched contrast is still shown, as a secondary row that does not count
    shown = c3[(c3["role"] == "secondary") & (c3["metric"] == "gain in area")]
    assert shown["effect"].iloc[0] == pytest.approx(0.08, abs=1e-12)
    assert not table.duplicated(["claim", "scope", "metric", "comparison"]).any()  # rows keyed
    verdict = claim_verdicts(table).set_index("claim").loc["C3"]
    assert verdict["verdict"] == NOT_TESTABLE and "61,706" in verdict["detail"]
    # no counts at all (a caller without sizes): nothing is matched either
    bare = evaluate_claims(_c3_runs({"mlp": 0.02, "lenet5": 0.10}), metrics=[("area", -1)])
    assert (bare[(bare["claim"] == "C3") & (bare["role"] == "primary")]["verdict"]
            == NOT_TESTABLE).all()
