"""The report's fixed prose: how each number is computed and judged, in one place."""

from __future__ import annotations

from rankrobust.report.claims import CLAIM_TEXT
from rankrobust.report.document import Bullets
from rankrobust.report.summary import LAMBDA_TOLERANCE

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


def claims_notes() -> Bullets:
    """How the claims rows are computed (shown under the per-row table); the margins and the
    combination rules have their own sections."""
    return Bullets([
        "**C1** effect: adversarial minus natural training, in the mean over layers of the "
        "normalized effective rank erank(W)/min(m, n) and effective sparsity esparsity(W)/(m·n) "
        "of the weights each run kept (its selected epoch: the best validation epoch for runs "
        "that select one, else the last; the weights the attacks evaluated) (claimed < 0), and "
        "of W − W₀ where the study recorded it.",
        "**C2–C4, C6** primary metric: the robust-accuracy area over [0, ε_train] of the primary "
        "attack (the curve's average height from clean accuracy at ε 0; higher = more robust). "
        "C2: ℓ1+nuclear − natural (> 0); C3: the C2 gain of the CNN minus the FC network's, per "
        "capacity-matched pair (parameter counts within ±15 %; the scope names the pair; "
        "without such a pair C3 is not testable and says why) (> 0); "
        "C4: ℓ1+nuclear − each adversarial method (< 0), plainly and at matched clean accuracy "
        "(ℓ1+nuclear's λ path read at the adversarial net's clean accuracy; where the paths do "
        "not overlap the row says so); C6: ℓ1+nuclear − weight decay at matched clean accuracy.",
        "**C5**: the natural network truncated to the adversarial net's effective rank (a "
        "measured keep level within ±2 % of that rank) − the adversarial net, in robust accuracy "
        "(< 0); *not testable* where the adversarial rank is not lower than natural's.",
        "`role`: only **primary** rows decide a verdict; **secondary** rows (the fooling ratio, "
        "the paper's metric; C3 relative to natural's mean; C5 at matched clean accuracy; C6 at "
        "the chosen λ) are shown, not counted.",
        "Columns: `effect` and its `95 % CI` (the interval of **Notes on the scoring**; in "
        "claims.csv `ci_low`, `ci_high`), `t CI` the paired Student-t interval over seeds "
        "(`t_low`, `t_high`), `n (seeds)` the seeds the row compares, `se_point` the point-level standard error, `margin` the "
        "equivalence margin (**Declared margins**), `test` the interval's kind. Verdict marks: "
        "**(small)**: holds or does not hold with |effect| within the margin; **‡ borderline**: "
        "a CI edge within one point-level standard error of 0, not a finding until repeated.",
    ])


def our_choices() -> str:
    return (
        "Where the paper's setup is not known to us the choices are ours: conv kernels are read "
        "as (out, in·kh·kw) matrices; normalized measures average layers of different size; the "
        "primary robustness measure is the robust-accuracy area over [0, ε_train] of the "
        "strongest attack stored as a curve up to ε_train; the statements tested are: "
        f"{'; '.join(f'{k}: {v}' for k, v in CLAIM_TEXT.items())}.")
