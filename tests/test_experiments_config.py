"""Study configs: grid expansion, stable run ids, strict one-line validation messages."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rankrobust.errors import ConfigError
from rankrobust.experiments import expand, load_study, run_config_from_dict, run_id, study_from_dict

BASE: dict[str, Any] = {
    "name": "t",
    "dataset": "synthetic",
    "model": "mlp",
    "model_options": {"hidden": [8, 4]},
    "train": {"epochs": 1, "device": "cpu"},
    "evaluation": {"attacks": [{"attack": "fgsm", "epsilons": [0.1, 0.2]}], "n": 16},
}


def _study(**over: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(over)
    return data


def test_grid_is_the_cross_product_times_seeds_and_lists_inside_fields_do_not_expand() -> None:
    study = study_from_dict(_study(
        seeds=[0, 1], grid={"model": ["mlp", "lenet5"], "train.lr": [1e-3, 2e-3, 3e-3]},
        model_options={}, per_model_options={"mlp": {"hidden": [8, 4]}},
    ))
    runs = expand(study)
    assert len(runs) == 2 * 3 * 2
    assert len({run_id(r) for r in runs}) == len(runs)
    assert {(r.model, r.train.lr, r.seed) for r in runs} == {
        (m, lr, s) for m in ("mlp", "lenet5") for lr in (1e-3, 2e-3, 3e-3) for s in (0, 1)
    }
    for r in runs:  # genuinely list-valued options stay lists
        assert r.evaluation.attacks[0].epsilons == (0.1, 0.2)
        assert r.model_options == ({"hidden": [8, 4]} if r.model == "mlp" else {})
        assert r.train.track_structure and not r.train.progress
    assert runs[0].label == "model=mlp,lr=0.001/seed=0"


def test_variants_have_their_own_grids_and_method_labels() -> None:
    study = study_from_dict(_study(variants=[
        {"name": "natural"},
        {"name": "fgsm", "train": {"method": {"name": "fgsm-adv", "eps": 0.1}}},
        {"name": "l1n", "train": {"method": {"name": "l1+nuclear", "lambda_nuclear": 1e-3}},
         "grid": {"train.method.lambda_l1": [1e-4, 1e-3]}},
        {"name": "again"},  # same config as "natural": deduplicated by id
    ]))
    runs = expand(study)
    assert [r.variant for r in runs] == ["natural", "fgsm", "l1n", "l1n"]
    assert [r.method for r in runs] == ["natural", "fgsm-adv", "l1+nuclear", "l1+nuclear"]
    assert [r.train.method.params().get("lambda_l1") for r in runs] == [None, None, 1e-4, 1e-3]
    assert runs[2].label == "l1n/lambda_l1=0.0001/seed=0"


def test_run_id_is_stable_and_hashes_only_what_changes_results() -> None:
    a = run_config_from_dict(_study_run())
    reordered = dict(reversed(list(_study_run().items())))
    assert run_id(run_config_from_dict(reordered)) == run_id(a)
    # execution-only fields do not change the id ...
    same = run_config_from_dict({**_study_run(), "label": "x", "study": "other",
                                 "resources": {"num_cpus": 2}, "save_checkpoints": True})
    assert run_id(same) == run_id(a)
    assert run_id(run_config_from_dict({**_study_run(), "train": {"epochs": 1, "device": "cpu",
                                                                  "progress": True}})) == run_id(a)
    # ... every computed field does; ints and floats of equal value are the same lr
    for change in ({"train": {"epochs": 2, "device": "cpu"}}, {"model_options": {"hidden": [8]}},
                   {"evaluation": {"n": 17}}, {"dataset": "mnist5k"}):
        assert run_id(run_config_from_dict({**_study_run(), **change})) != run_id(a)
    one = run_config_from_dict({**_study_run(), "train": {"epochs": 1, "device": "cpu", "lr": 1}})
    onef = run_config_from_dict({**_study_run(), "train": {"epochs": 1, "device": "cpu", "lr": 1.0}})
    assert run_id(one) == run_id(onef)
    # and another interpreter computes the same id
    code = ("from rankrobust.experiments import run_config_from_dict, run_id;"
            f"print(run_id(run_config_from_dict({_study_run()!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == run_id(a)
    assert len(run_id(a)) == 16 and int(run_id(a), 16) >= 0


def _study_run() -> dict[str, Any]:
    return {k: v for k, v in copy.deepcopy(BASE).items() if k != "name"}


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"modle": "mlp"}, ["unknown key 'modle'", "did you mean 'model'"]),
        ({"train": {"lrr": 0.1}}, ["unknown key 'train.lrr'", "did you mean 'lr'"]),
        ({"train": {"method": {"name": "l1", "lambda_l2": 1.0}}},
         ["train.method.lambda_l2", "did you mean 'lambda_l1'"]),
        ({"train": {"method": {"name": "l2"}}}, ["train.method", "did you mean 'l1'"]),
        ({"train": {"method": {"lambda_l1": 1.0}}}, ["train.method.name"]),
        ({"train": {"lr": "fast"}}, ["train.lr", "expected a number"]),
        ({"train": {"epochs": 0}}, ["train", "epochs must be ≥ 1"]),
        ({"train": {"optimizer": "adamw"}}, ["train.optimizer", "did you mean 'adam'"]),
        ({"train": {"seed": 3}}, ["train.seed", "seeds"]),
        ({"model": "lenet"}, ["model", "did you mean 'lenet5'"]),
        ({"model_options": {"hiden": [3]}}, ["model_options.hiden", "did you mean 'hidden'"]),
        ({"dataset": "mnist-5k"}, ["dataset", "mnist5k"]),
        ({"evaluation": {"attacks": [{"attack": "fgsm", "epsilons": [-0.1]}]}},
         ["evaluation.attacks[0].epsilons", "≥ 0"]),
        ({"evaluation": {"attacks": [{"attack": "pgdd", "epsilons": [0.1]}]}},
         ["evaluation.attacks[0].attack", "did you mean 'pgd'"]),
        ({"evaluation": {"attacks": [{"attack": "fgsm", "epsilons": 0.1}]}},
         ["evaluation.attacks[0].epsilons", "expected a list"]),
        ({"evaluation": {"n": 0}}, ["evaluation.n", "≥ 1"]),
        ({"resources": {"num_cpus": 0}}, ["resources.num_cpus"]),
        ({"seeds": [0, 0]}, ["seeds", "duplicate"]),
        ({"seeds": "0"}, ["seeds", "list"]),
        ({"grid": {"train.lr": 0.1}}, ["grid.train.lr", "non-empty list"]),
        ({"grid": {"train.lrr": [0.1]}}, ["unknown key 'train.lrr'", "[run lrr=0.1/seed=0]"]),
        ({"grid": {"seeds": [1]}}, ["grid.seeds", "cannot be a grid key"]),
        ({"variants": [{"name": "a", "trian": {}}]}, ["variants[0].trian", "did you mean 'train'"]),
        ({"variants": [{"train": {}}]}, ["variants[0]", "name"]),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, ["duplicate variant name 'a'"]),
        ({"per_model_options": {"lenet": {}}}, ["per_model_options", "did you mean 'lenet5'"]),
        ({"variants": [{"name": "bad", "train": {"method": {"name": "l1", "lambda_l1": 0}}}]},
         ["train.method", "lambda_l1 must be", "[run bad/seed=0]"]),
    ],
)
def test_strict_validation_names_the_path_in_one_line(change: dict[str, Any], needles: list[str]) -> None:
    data = _study()
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict) and key != "grid":
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    with pytest.raises(ConfigError) as info:
        expand(study_from_dict(data))
    message = str(info.value)
    assert len(message.splitlines()) == 1
    for needle in needles:
        assert needle in message, message


def test_load_study_reads_yaml_and_reports_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "my-study.yaml"
    data = _study()
    del data["name"]
    path.write_text(yaml.safe_dump(data))
    assert load_study(path).name == "my-study"
    path.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_study(path)
    with pytest.raises(ConfigError, match="not found"):
        load_study(tmp_path / "missing.yaml")


def test_example_studies_are_valid() -> None:
    examples = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
    assert any(p.name == "smoke.yaml" for p in examples)
    for path in examples:
        assert expand(load_study(path)), path


def test_a_variant_may_list_its_own_seeds() -> None:
    from rankrobust.experiments.grid import count_runs, expand
    from rankrobust.experiments.study_config import study_from_dict

    study = study_from_dict({"dataset": "synthetic", "seeds": [0, 1], "variants": [
        {"name": "key", "seeds": [0, 1, 2, 3, 4]}, {"name": "side", "train": {"epochs": 2}}]})
    runs = expand(study)
    assert count_runs(study) == len(runs) == 7
    assert [r.seed for r in runs if r.variant == "key"] == [0, 1, 2, 3, 4]
    assert [r.seed for r in runs if r.variant == "side"] == [0, 1]
    for bad, message in (([], "variants\\[0\\].seeds: expected a non-empty list"),
                         ([1, 1], "duplicate seeds")):
        with pytest.raises(ConfigError, match=message):
            study_from_dict({"variants": [{"name": "v", "seeds": bad}]})
