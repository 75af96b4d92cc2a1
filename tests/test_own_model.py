"""The researcher's own model (issue 21 §1): a user module in a folder of theirs, factory
arguments, outputs that are not a tensor, normalized inputs, state-dict conventions, settings in
the JSON output, and the flags that need not be repeated. The user module is written to a
temporary folder, as a user would have it; nothing here is on the import path beforehand."""

from __future__ import annotations

import itertools
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from torch import nn

from rankrobust.attacks import pgd
from rankrobust.cli.main import build_parser, main
from rankrobust.data import load_dataset
from rankrobust.errors import ConfigError
from rankrobust.external import load_external_model, match_keys
from rankrobust.factory import parse_factory
from rankrobust.models import ModelAdapter, Normalization, Normalize
from rankrobust.robustness import fooling_ratio_curve

USER_MODULE = textwrap.dedent('''
    """A researcher's own network, as in their project folder."""
    import torch
    from torch import nn


    class Output:
        def __init__(self, logits):
            self.logits = logits
            self.hidden = None


    class Net(nn.Module):
        def __init__(self, width=4, num_classes=4, out="tensor"):
            super().__init__()
            self.conv = nn.Conv2d(1, width, 3, stride=2)
            self.fc = nn.Linear(width * 7 * 7, num_classes)
            self.out = out

        def forward(self, x):
            z = self.fc(torch.relu(self.conv(x)).flatten(1))
            if self.out == "dict":
                return {"features": x.flatten(1), "logits": z}
            if self.out == "tuple":
                return (x.flatten(1), z)
            if self.out == "object":
                return Output(z)
            return z


    def make_net(num_classes=4):
        return Net(4, num_classes)


    def make_wide(width, num_classes=4, out="tensor"):
        return Net(width, num_classes, out)


    def create_model(model_name, **kwargs):  # builds a model from a name, as timm.create_model
        return {"wide": make_wide}[model_name](**kwargs)
''')
_names = itertools.count()


@pytest.fixture()
def user_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder holding ``usernet_<k>.py`` (a fresh module name per test: imported modules stay
    cached) and ``net.safetensors`` (width 4) / ``wide.safetensors`` (width 8); removed from
    sys.modules afterwards."""
    name = f"usernet_{next(_names)}_{abs(hash(str(tmp_path))) % 10**6}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    torch.manual_seed(0)
    for file, width in (("net", 4), ("wide", 8)):
        conv, fc = nn.Conv2d(1, width, 3, stride=2), nn.Linear(width * 49, 4)
        save_file({"conv.weight": conv.weight.detach(), "conv.bias": conv.bias.detach(),
                   "fc.weight": fc.weight.detach(), "fc.bias": fc.bias.detach()},
                  tmp_path / f"{file}.safetensors")
    yield tmp_path, name
    for key in [k for k in sys.modules if k.startswith(name)]:
        del sys.modules[key]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out, out.err


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _reference(width: int, folder: Path) -> nn.Module:
    """The plain width-``width`` network with the weights of ``folder``, built here."""
    from safetensors.torch import load_file

    conv, fc = nn.Conv2d(1, width, 3, stride=2), nn.Linear(width * 49, 4)
    tensors = load_file(folder / ("net" if width == 4 else "wide").__add__(".safetensors"))
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), fc)
    model.load_state_dict({"0.weight": tensors["conv.weight"], "0.bias": tensors["conv.bias"],
                           "3.weight": tensors["fc.weight"], "3.bias": tensors["fc.bias"]})
    return model.eval()


# --- 1. the import path -------------------------------------------------------------------------

def test_the_current_folder_is_importable_and_left_as_it_was(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, name = user_dir
    monkeypatch.chdir(folder)
    path_before = list(sys.path)
    out, _ = _run(["analyze", "net.safetensors", "--model-factory", f"{name}:make_net",
                   "--format", "json"], capsys)
    assert [r["layer"] for r in json.loads(out)] == ["conv", "fc"]
    assert sys.path == path_before  # the folder was on the path for the import only


def test_a_file_path_names_the_module(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, name = user_dir
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    out, _ = _run(["analyze", str(folder / "net.safetensors"), "--model-factory",
                   f"{folder / name}.py:make_net", "--format", "json"], capsys)
    assert len(json.loads(out)) == 2


def test_import_errors_say_what_was_tried(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder, name = user_dir
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)
    err = _fails(["analyze", str(folder / "net.safetensors"), "--model-factory", f"{name}:make_net"],
                 capsys)
    assert f"cannot import module '{name}'" in err and f"current folder {elsewhere}" in err
    assert f"path/to/{name}.py:make_net" in err
    err = _fails(["analyze", str(folder / "net.safetensors"), "--model-factory", "nets/missing.py:make"],
                 capsys)
    assert "file nets/missing.py not found" in err
    err = _fails(["analyze", str(folder / "net.safetensors"), "--model-factory",
                  f"{folder / name}.py:make_nte"], capsys)
    assert "has no attribute 'make_nte' (did you mean 'make_net'?)" in err


# --- 2. factory arguments ----------------------------------------------------------------------

@pytest.mark.parametrize("how", ["factory-arg", "call", "by-name"])
def test_factory_arguments(user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str], how: str) -> None:
    folder, name = user_dir
    spec, extra = {
        "factory-arg": (f"{folder / name}.py:make_wide", ["--factory-arg", "width=8"]),
        "call": (f"{folder / name}.py:make_wide(width=8)", []),
        # a factory building a model from a name, as timm.create_model('resnet18', num_classes=10)
        "by-name": (f"{folder / name}.py:create_model('wide', width=8, num_classes=4)", []),
    }[how]
    out, _ = _run(["analyze", str(folder / "wide.safetensors"), "--model-factory", spec, *extra,
                   "--input-shape", "1,16,16", "--format", "json"], capsys)
    assert json.loads(out)[0]["shape"] == "8x9"


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        ("make_wide(width=__import__('os').system('touch pwned'))", "is not a literal"),
        ("make_wide(width=WIDTH)", "argument 'WIDTH' is not a literal"),
        ("make_wide(width=4 * 2)", "argument '4 * 2' is not a literal"),
        ("make_wide(**{'width': 8})", "**arguments are not accepted"),
        ("make_wide(", "expected 'module:function'"),
    ],
)
def test_a_call_takes_literals_only(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    call: str, needle: str,
) -> None:
    folder, name = user_dir
    monkeypatch.chdir(folder)
    err = _fails(["analyze", "wide.safetensors", "--model-factory", f"{name}:{call}"], capsys)
    assert needle in err, err
    assert not (folder / "pwned").exists()
    assert name not in sys.modules  # refused before anything was imported


def test_factory_argument_conflicts_and_wrong_keywords(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, name = user_dir
    spec = f"{folder / name}.py:make_wide"
    weights = str(folder / "wide.safetensors")
    err = _fails(["analyze", weights, "--model-factory", f"{spec}(width=8)", "--factory-arg", "width=8"], capsys)
    assert "--factory-arg width: given twice" in err
    err = _fails(["analyze", weights, "--model-factory", spec, "--factory-arg", "widht=8"], capsys)
    assert "cannot be called as make_wide(widht=8)" in err and "widht" in err
    err = _fails(["analyze", weights, "--model-factory", spec, "--factory-arg", "width"], capsys)
    assert "--factory-arg 'width': expected KEY=VALUE" in err


# --- 3. logits from tuples, dicts and objects; 4. normalization --------------------------------

@pytest.mark.parametrize(("out", "key"), [("dict", "logits"), ("tuple", "1"), ("tuple", "-1"),
                                          ("object", "logits")])
def test_logits_adapter_gives_the_plain_models_numbers(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str], out: str, key: str
) -> None:
    folder, name = user_dir
    args = ["evaluate", str(folder / "wide.safetensors"), "--model-factory",
            f"{folder / name}.py:make_wide(width=8, out={out!r})", "--dataset", "synthetic",
            "--attack", "pgd", "--steps", "3", "--eps", "0.1,0.3", "--n", "32", "--format", "json",
            "--no-sanity", "--device", "cpu"]
    err = _fails(args, capsys)
    assert "not a logits tensor; pass --logits KEY|INDEX" in err
    rows = json.loads(_run([*args, "--logits", key], capsys)[0])
    expected = fooling_ratio_curve(_reference(8, folder), load_dataset("synthetic", "test"), "pgd",
                                   [0.1, 0.3], n=32, seed=0, steps=3)
    assert [r["fooling_ratio"] for r in rows] == list(expected["fooling_ratio"])
    assert rows[0]["settings"]["logits"] == (int(key) if key.lstrip("-").isdigit() else key)


@pytest.mark.parametrize(("out", "key", "needle"), [
    ("dict", "logit", "--logits logit: no such key, the model returns a dict with keys 'features', 'logits'"),
    ("tuple", "2", "--logits 2: out of range, the model returns a tuple of 2"),
    ("object", "0", "--logits 0: the model returns an object of type Output"),
    ("object", "hidden", "--logits hidden: picks an object of type NoneType, not a tensor"),
])
def test_a_wrong_logits_choice_is_one_line(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str], out: str, key: str, needle: str
) -> None:
    folder, name = user_dir
    err = _fails(["evaluate", str(folder / "wide.safetensors"), "--model-factory",
                  f"{folder / name}.py:make_wide(width=8, out={out!r})", "--dataset", "synthetic",
                  "--eps", "0.1", "--logits", key], capsys)
    assert needle in err, err


def test_the_adapter_in_the_python_api(user_dir: tuple[Path, str]) -> None:
    folder, name = user_dir
    model = load_external_model(f"{folder / name}.py:make_wide(width=8, out='dict')",
                                folder / "wide.safetensors", logits="logits")
    assert isinstance(model, ModelAdapter) and model.describe() == {"logits": "logits", "normalization": None}
    x, y = load_dataset("synthetic", "test")
    ours = pgd(model, x[:16], y[:16], [0.2], steps=3)
    plain = pgd(_reference(8, folder), x[:16], y[:16], [0.2], steps=3)
    assert torch.equal(ours.success, plain.success) and torch.equal(ours.x_adv, plain.x_adv)


def test_mean_std_attack_in_pixel_space(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, name = user_dir
    args = ["evaluate", str(folder / "wide.safetensors"), "--model-factory",
            f"{folder / name}.py:make_wide(width=8)", "--dataset", "synthetic", "--attack", "pgd",
            "--steps", "3", "--eps", "0.05,0.2", "--n", "32", "--format", "json", "--no-sanity",
            "--device", "cpu"]
    out, err = _run([*args, "--mean", "0.3", "--std", "0.2"], capsys)
    rows = json.loads(out)
    # the network trained on z = (x − 0.3) / 0.2, attacked on x: the same as a model whose first
    # layer normalizes (rankrobust's own convention)
    normalized = nn.Sequential(Normalize([0.3], [0.2]), _reference(8, folder)).eval()
    expected = fooling_ratio_curve(normalized, load_dataset("synthetic", "test"), "pgd", [0.05, 0.2],
                                   n=32, seed=0, steps=3)
    assert [r["fooling_ratio"] for r in rows] == list(expected["fooling_ratio"])
    assert [r["clean_accuracy"] for r in rows] == list(expected["clean_accuracy"])
    assert rows[0]["settings"]["normalization"] == {"mean": [0.3], "std": [0.2]}
    assert "note: inputs normalized inside the model" in err and "pixel units" in err
    plain = json.loads(_run(args, capsys)[0])
    assert "normalization" not in plain[0]["settings"]


@pytest.mark.parametrize(("extra", "needle"), [
    (["--mean", "0.3,0.3,0.3", "--std", "0.2,0.2,0.2"], "--mean/--std have 3 values but the inputs have 1 channel"),
    (["--mean", "0.3", "--std", "0.2,0.2"], "--mean has 1 values but --std has 2"),
    (["--mean", "0.3"], "--mean and --std go together"),
    (["--mean", "0.3", "--std", "0"], "every std > 0"),
    (["--mean", "nan", "--std", "1"], "must be finite"),
])
def test_bad_normalization_is_one_line(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    folder, name = user_dir
    err = _fails(["evaluate", str(folder / "net.safetensors"), "--model-factory",
                  f"{folder / name}.py:make_net", "--dataset", "synthetic", "--eps", "0.1", *extra], capsys)
    assert needle in err, err


def test_normalization_is_refused_without_a_factory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _fails(["evaluate", str(tmp_path), "--eps", "0.1", "--mean", "0.5", "--std", "0.5"], capsys)
    assert "--mean applies only with --model-factory" in err


# --- 5. state-dict conventions -----------------------------------------------------------------

def _state(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "net.safetensors")


@pytest.mark.parametrize(("layout", "notes"), [
    ("module", ["stripped the prefix 'module.'", "nn.DataParallel/DDP"]),
    ("lightning", ["read the state dict under 'state_dict' (ignored: epoch, optimizer_states)",
                   "stripped the prefix 'model.'"]),
    ("robustbench", ["read the state dict under 'model_state_dict'"]),
    ("ddp-in-wrapper", ["stripped the prefix 'model.module.'"]),
])
def test_state_dict_conventions_are_recognized(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str], layout: str, notes: list[str]
) -> None:
    folder, name = user_dir
    state = _state(folder)
    path = folder / f"{layout}.pt"
    if layout == "module":
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
    elif layout == "lightning":
        torch.save({"epoch": 3, "optimizer_states": [{"lr": 0.1}],
                    "state_dict": {f"model.{k}": v for k, v in state.items()}}, path)
    elif layout == "robustbench":
        torch.save({"model_state_dict": state, "optimizer_state_dict": {"state": {}}}, path)
    else:
        torch.save({f"model.module.{k}": v for k, v in state.items()}, path)
    out, err = _run(["analyze", str(path), "--model-factory", f"{folder / name}.py:make_net",
                     "--allow-torch-load", "--format", "json"], capsys)
    for needle in notes:
        assert needle in err, err
    assert all(line.startswith("note: ") for line in err.splitlines())
    reference, _ = _run(["analyze", str(folder / "net.safetensors"), "--model-factory",
                         f"{folder / name}.py:make_net", "--format", "json"], capsys)
    assert json.loads(out) == json.loads(reference)


@pytest.mark.parametrize(("keys", "needle"), [
    # stripping 'module.' would leave an extra key: nothing is stripped, the first mismatch named
    (lambda s: {**{f"module.{k}": v for k, v in s.items()}, "module.extra": s["fc.bias"]},
     "missing key 'conv.weight' (every key in the file starts with 'module.'"),
    # only some keys carry the prefix
    (lambda s: {("module." + k if k.startswith("conv") else k): v for k, v in s.items()},
     "missing key 'conv.weight'"),
    # two candidate state dicts: ambiguous, refused
    (lambda s: {"state_dict": s, "model_state_dict": s}, "nor a checkpoint with one state dict"),
])
def test_a_prefix_is_stripped_only_when_every_key_then_matches(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str], keys: object, needle: str
) -> None:
    folder, name = user_dir
    path = folder / "odd.pt"
    torch.save(keys(_state(folder)), path)  # type: ignore[operator]
    err = _fails(["analyze", str(path), "--model-factory", f"{folder / name}.py:make_net",
                  "--allow-torch-load"], capsys)
    assert needle in err, err


def test_match_keys_strips_nothing_it_does_not_have_to() -> None:
    t = torch.zeros(1)
    assert match_keys(["a.w"], {"a.w": t}) == ({"a.w": t}, "")
    assert match_keys(["w"], {"module.w": t}) == ({"w": t}, "module.")
    assert match_keys(["a.w", "b.w"], {"m.a.w": t, "m.c.w": t})[1] == ""


# --- #22 §3: the probe's input shape is bounded before it is allocated ------------------------

def test_a_huge_input_shape_is_refused_before_allocation(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, name = user_dir
    err = _fails(["analyze", str(folder / "net.safetensors"), "--model-factory",
                  f"{folder / name}.py:make_net", "--input-shape", "3,100000,100000"], capsys)
    assert "30,000,000,000 values per input, above the limit of 16,777,216" in err


# --- 7. settings and warnings in the JSON output; 8. no redundant flags ------------------------

def test_json_carries_the_attack_settings_and_the_warnings(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, name = user_dir
    zero = {k: torch.zeros_like(v) for k, v in _state(folder).items()}  # a constant model
    save_file(zero, folder / "zero.safetensors")
    out, err = _run(["evaluate", str(folder / "zero.safetensors"), "--model-factory",
                     f"{folder / name}.py:make_net", "--dataset", "synthetic", "--attack", "pgd",
                     "--steps", "3", "--restarts", "2", "--seed", "7", "--eps", "0.1", "--n", "16",
                     "--format", "json", "--device", "cpu"], capsys)
    row = json.loads(out)[0]
    assert row["settings"] == {"attack": "pgd", "norm": "inf", "seed": 7, "steps": 3,
                               "step_size": "2.5*eps/steps", "random_start": True, "restarts": 2}
    warned = [line.removeprefix("warning: ") for line in err.splitlines() if line.startswith("warning: ")]
    assert row["warnings"] == warned and any("pgd at ε=1" in w for w in warned)


@pytest.mark.parametrize(("attack", "extra", "settings"), [
    ("autoattack", ["--queries", "10", "--steps", "2"],
     {"steps": 2, "n_queries": 10, "n_targets": 3, "restarts": 1, "p_init": 0.8,
      "members": ["apgd-ce", "apgd-t", "square"], "step_size": "adaptive (2*eps at first)"}),
    # 4 classes: 3 targets run, whatever n_targets says
    ("apgd-t", ["--steps", "2"], {"steps": 2, "loss": "dlr-targeted", "n_targets": 3, "restarts": 1}),
    ("square", ["--queries", "10"], {"n_queries": 10, "p_init": 0.8}),
    ("deepfool", [], {"max_iter": 50, "overshoot": 0.02}),
])
def test_json_settings_per_attack(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str], attack: str, extra: list[str],
    settings: dict[str, object],
) -> None:
    folder, name = user_dir
    out, _ = _run(["evaluate", str(folder / "net.safetensors"), "--model-factory",
                   f"{folder / name}.py:make_net", "--dataset", "synthetic", "--attack", attack,
                   *extra, "--eps", "0.1", "--n", "8", "--format", "json", "--no-sanity",
                   "--device", "cpu"], capsys)
    got = json.loads(out)[0]["settings"]
    assert {k: got[k] for k in settings} == settings and got["seed"] == 0


def test_intervene_json_has_settings_and_per_layer_structure(
    user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, name = user_dir
    out, _ = _run(["intervene", str(folder / "net.safetensors"), "--model-factory",
                   f"{folder / name}.py:make_net", "--dataset", "synthetic", "--svd-keep", "1",
                   "--per-layer", "--eps", "0.1", "--n", "8", "--steps", "2", "--no-deepfool",
                   "--format", "json", "--device", "cpu", "--mean", "0.5", "--std", "0.5"], capsys)
    rows = json.loads(out)
    assert [r["layer"] for r in rows] == ["conv", "fc"]  # named as analyze names them
    analyzed = json.loads(_run(["analyze", str(folder / "net.safetensors"), "--model-factory",
                                f"{folder / name}.py:make_net", "--format", "json"], capsys)[0])
    assert [r["effective_rank"] for r in rows] == [r["effective_rank"] for r in analyzed]
    assert rows[0]["settings"]["steps"] == 2 and rows[0]["settings"]["normalization"]["mean"] == [0.5]


def test_no_redundant_flags(user_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    folder, name = user_dir
    analyze_help = build_parser()._subparsers._group_actions[0].choices["analyze"].format_help()  # type: ignore[union-attr]
    assert "--dataset" not in analyze_help
    # with a factory, the dataset is what evaluate needs, checked before anything is loaded
    err = _fails(["evaluate", str(folder / "missing.safetensors"), "--model-factory",
                  f"{folder / name}.py:make_net", "--eps", "0.1"], capsys)
    assert "pass --dataset" in err and "--input-shape and --num-classes then follow from it" in err
    # --dataset alone gives the input shape and class count
    out, _ = _run(["evaluate", str(folder / "net.safetensors"), "--model-factory",
                   f"{folder / name}.py:make_net", "--dataset", "synthetic", "--attack", "fgsm",
                   "--eps", "0.1", "--n", "8", "--format", "json", "--no-sanity"], capsys)
    assert json.loads(out)[0]["n"] == 8


def test_normalization_value_object() -> None:
    assert Normalization.of([0.5, 0.4], [0.2, 0.1]).describe() == {"mean": [0.5, 0.4], "std": [0.2, 0.1]}


def test_the_readme_own_model_command_runs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's one command from a fresh clone (on fewer inputs, without the sanity checks)."""
    import shlex

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    block = readme[readme.index("make venv && .venv/bin/rankrobust evaluate examples/own_model"):]
    command = block[: block.index("```")].replace("\\\n", " ")
    argv = shlex.split(command.removeprefix("make venv && .venv/bin/rankrobust"))
    monkeypatch.chdir(root)
    out, err = _run([*argv, "--n", "64", "--no-sanity", "--format", "json"], capsys)
    rows = json.loads(out)
    assert rows[0]["clean_accuracy"] > 0.9  # the committed weights are a trained network
    assert [r["epsilon"] for r in rows] == [0.05, 0.1, 0.2]
    assert rows[0]["settings"]["logits"] == "logits" and "note: inputs normalized" in err


LITERALS = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(st.lists(LITERALS, max_size=3),
       st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), LITERALS, max_size=3))
def test_literal_calls_parse_to_their_values(args: list[object], kwargs: dict[str, object]) -> None:
    text = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
    spec = parse_factory(f"pkg.mod:Nets.make({text})")
    assert (spec.target, spec.name, list(spec.args), dict(spec.kwargs)) == ("pkg.mod", "Nets.make", args, kwargs)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.text(max_size=60))
def test_any_spec_parses_or_is_one_config_error(text: str) -> None:
    for spec in (text, f"mod:{text}", f"mod:make({text})"):
        try:
            parse_factory(spec)
        except ConfigError as exc:  # anything else (a SyntaxError, a RecursionError) fails the test
            assert str(exc).startswith("--model-factory")


@settings(max_examples=40, derandomize=True, deadline=None)
@given(flag=st.sampled_from(["--logits", "--factory-arg", "--mean", "--std", "--input-shape"]),
       value=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12))
def test_factory_flags_take_any_text_to_a_result_or_one_line(flag: str, value: str) -> None:
    """Any value of a new flag: exit 0, or exit 2 with one line and no traceback."""
    import contextlib
    import io

    folder = Path(__file__).resolve().parents[1] / "examples" / "own_model"
    argv = ["analyze", str(folder / "mynet.safetensors"), "--model-factory",
            f"{folder / 'mynet.py'}:make_net", "--factory-arg", "width=8", "--input-shape", "1,16,16",
            "--logits", "logits", "--format", "csv", f"{flag}={value}"]
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    lines = [line for line in err.getvalue().splitlines() if not line.startswith("note: ")]
    assert code in (0, 2), err.getvalue()
    assert len(lines) == (1 if code == 2 else 0) and "Traceback" not in err.getvalue(), err.getvalue()


def test_a_file_is_imported_once_even_when_its_name_is_taken(tmp_path: Path) -> None:
    from rankrobust.factory import import_factory

    (tmp_path / "json.py").write_text("def make():\n    return 'mine'\n")  # 'json' is the stdlib's
    first = import_factory(f"{tmp_path / 'json.py'}:make")
    assert first() == "mine" and import_factory(f"{tmp_path / 'json.py'}:make") is first
    assert sys.modules["json"].__name__ == "json" and hasattr(sys.modules["json"], "dumps")
    del sys.modules[first.__module__]
