"""The report's fixed prose: how each number is computed and judged, in one place."""

from __future__ import annotations

from rankrobust.report.claims import (
    CLAIM_TEXT,
    FOOLING_MARGIN,
    STRUCTURE_MARGIN,
    robustness_metrics,
)
from rankrobust.report.document import Bullets
from rankrobust.report.summary import LAMBDA_TOLERANCE, attack_label

PIPELINE = ("**Pipeline check, not a result.** Every run of this study used the built-in "
            "synthetic data (the `smoke` preset): the tables below show that the pipeline "
            "computes every effect, and give no verdict on the paper's claims.")

FRONTIER_CAPTION = (
    "Clean accuracy vs robust-accuracy area over [0, ε_train] (average height of the strongest "
    "attack's curve with ≥ 2 budgets, from clean accuracy at ε 0). Dots: runs; lines: each "
    "method's settings (λ, rank, ε_train), weakest to strongest. Up and right is better.")

LAMBDA_RULE = (
    "Rule: for each model and each method with a swept setting (a λ grid, or a rank budget), "
    "the settings are ordered from weakest to strongest (λ's in the method's declared order, "
    "e.g. (λ_*, λ₁); rank budgets downwards) and the comparisons use the **strongest setting "
    f"whose mean clean accuracy over seeds stays within {100 * LAMBDA_TOLERANCE:g} points of "
    "natural training**. Where none qualifies, the most accurate one is used and flagged "
    "(`fallback`, and † in the summary table). The accuracy compared is measured on validation "
    "examples held out from training (`train.validation_size`), never on the test points the "
    "attacks use, wherever the runs have one (`selected_on`).")

INTERVENTIONS = (
    "After training, with no retraining, each layer's SVD is truncated to a share of its "
    "rank (or its weights are magnitude-pruned) and the copy is attacked again. **C5** reads "
    "the natural network's robust accuracy off its truncation curve at the effective rank "
    "adversarial training reaches and compares it with the adversarially trained network under "
    "the same attack: if cutting rank alone made a network robust, the effect would be ≥ 0.")

NO_INTERVENTIONS = ("(No intervention tables stored: add `evaluation.interventions` to the "
                    "study to cut each trained network's rank or prune it after training.)")


def degenerate(count: int, margin: float) -> str:
    return (f"**{count} degenerate run(s)**: clean accuracy within {100 * margin:g} points of "
            "chance. Under the fooling ratio such a model looks robust by being constant; they "
            "are flagged in the run table, left out of the correlations and drawn hollow in the "
            "scatter plot.")


def claims_notes(attack: str) -> Bullets:
    """How the claims table is computed and judged (shown under it)."""
    fr, ra = (m for m, _ in robustness_metrics(attack))
    name = attack_label(attack, "inf")
    return Bullets([
        "**C1** effect: adversarial minus natural training, in the mean over layers of the "
        "normalized effective rank erank(W)/min(m, n) or effective sparsity esparsity(W)/(m·n) "
        "of the final weights (claimed < 0).",
        f"**C2–C4** metrics: `{fr}`, the {name} fooling ratio (share of inputs whose label "
        f"changes; the paper's metric, lower = more robust), and `{ra}`, the robust accuracy "
        "(share still classified correctly; higher = more robust), each as the normalized area "
        "under its curve over the ε grid: (1/(ε_max − ε_min))·∫ m(ε) dε by the trapezoid rule, "
        "the curve's average height, not the plain mean of the grid's values (for an attack "
        "stored at one ε, the value at that ε). C2: ℓ1+nuclear − "
        "natural (claimed more robust); C4: ℓ1+nuclear − adversarial (claimed less robust).",
        "**C3**: the C2 gain in robustness of the CNN minus that of the FC network (claimed > 0), "
        "Welch interval over the per-seed gains; a second row divides each gain by natural "
        "training's mean, since the two families start from different baselines.",
        "Intervals: paired Student-t over seeds (same seed, same model); effects and CIs are in "
        "the metric's own units, `relative` is the effect over the reference method's mean.",
        f"Verdict: **negligible** when the whole 95 % CI lies within ±{STRUCTURE_MARGIN} "
        f"(structure) or ±{FOOLING_MARGIN} (fooling ratio, robust accuracy), whatever its sign; "
        "otherwise **holds** when the CI lies wholly on the claimed side of 0, **does not hold** "
        "when it lies wholly on the other side, **inconclusive** otherwise (also with fewer "
        "than 2 seeds). A claim holds when all its rows hold.",
    ])


def our_choices() -> str:
    return (
        "Where the paper's setup is not known to us the choices are ours: conv kernels are read "
        "as (out, in·kh·kw) matrices; normalized measures average layers of different size; the "
        "primary robustness measure is the strongest stored attack's ℓ∞ curve, as an area over "
        "its ε grid; the statements tested are: "
        f"{'; '.join(f'{k}: {v}' for k, v in CLAIM_TEXT.items())}.")
