"""Fuzz the command line with 1,150 seeded mutations of a checkpoint folder, a study file and
the options of ``train``, ``evaluate`` and ``intervene``.

Each case runs ``rankrobust.cli.main.main(argv)`` in-process: ``analyze`` on a mutated checkpoint
(sidecar JSON and safetensors header/bytes), ``sweep --dry-run`` on a mutated study YAML (its
attack options, intervention keep lists and seeds included), and command lines drawn from
hostile ``--set`` values, keep and budget lists and attack options. Every outcome must be exit 0
with a correct result (the analysis matches the weights the file really holds; the run count
matches the study; a trained model is of the method asked for; one row per budget or keep
share) or exit 2 with exactly one stderr line starting "rankrobust: error:". No traceback, no case over 10 s, and no allocation past 1 GiB: the cases
run in a subprocess whose address space is capped (RLIMIT_AS) at 1 GiB above its size once
everything is imported, so a hostile size that slipped through would end in a MemoryError.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import faulthandler
import io
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

CHECKPOINT_CASES = 500
STUDY_CASES = 500
CLI_CASES = 150
SEED = 20190128
CASE_SECONDS = 10.0
MARKER = "rankrobust-fuzz-pwned"

STUDY: dict[str, Any] = {
    "name": "fuzz", "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
    "train": {"epochs": 1, "batch_size": 32, "lr": 0.01, "device": "cpu"},
    "evaluation": {"n": 16, "attacks": [{"attack": "fgsm", "norm": "inf", "epsilons": [0.0, 0.1]},
                                        {"attack": "pgd", "epsilons": [0.1], "options": {"steps": 3}}],
                   "interventions": [{"kind": "svd", "keeps": [0.5, 1.0], "options": {"steps": 2}}]},
    "seeds": [0, 1], "grid": {"train.lr": [0.01, 0.02]},
    "variants": [{"name": "natural"}, {"name": "l1", "train": {"method": {"name": "l1", "lambda_l1": 0.0001}}}],
}
VALUES: list[Any] = [
    -1, 0, 1, 2, 3, 5, 16, 2**31, 2**63, 2**64, 10**9, 10**40, -(2**63), 0.5, -0.0, 1e308, 1e-300,
    True, False, None, "", "x", "mlp", "lenet5", "cnn-small", "synthetic", "mnist", "x" * 3000,
    [], {}, [1], [1, 4, 4], [1, 2, 3, 4], [-1, 4, 4], [3, 32, 32], [1, 1, 1], [10**6] * 3,
    [5], [5, 7], [10**6, 10**6], [0.5], [0.0], [[[]]], {"hidden": [10**6, 10**6]}, {"hidden": []},
    {"hidden": [5, 7]}, {"widths": [3]}, {"mean": [0.5], "std": [0.0]}, {"name": "l1", "lambda_l1": -1},
    {"name": "nope"}, {"name": "pgd-adv", "eps": 1e9, "steps": 10**9}, list(range(200)),
    {"steps": 10**9}, {"n_queries": 10**12}, {"seed": 2**64}, {"restarts": 10**6}, {"seed": -1},
    [0.5] * 2000, [i / 1000 for i in range(1, 1002)], {"name": "lowrank", "layers": "layers.2"},
    {"name": "trades", "beta": 0}, {"name": "fgsm-adv", "alpha": 1.0}, {"name": "lowrank", "rank": 10**6},
]
RAW_JSON = ["NaN", "Infinity", "-Infinity", "1e999", "9" * 5000, "[" * 5000 + "]" * 5000,
            '{"a": ' * 3000 + "1" + "}" * 3000, "-1e-999", '"\\ud800"', "0" * 50]
RAW_YAML = [".nan", ".inf", "-.inf", "2020-01-01", "!!binary aGVsbG8=", "!!set {a, b}",
            f"!!python/object/apply:os.system ['touch /tmp/{MARKER}']", "*nothing", "&a 1",
            "1" + "0" * 5000, "[" * 200 + "]" * 200, "0x10", "1_000", "~", "yes", "'quoted'",
            '"\\x00"', "!!float 1e999", "{a: 1, a: 2}", "[*x, &x 1]", "!!int '99999999999999999999'"]


# -- mutations -------------------------------------------------------------------------------
def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


def _mutate_tree(rng: random.Random, doc: Any, extra_keys: list[str]) -> tuple[Any, str | None]:
    """One structural mutation; returns the document and, for a raw-token mutation, the token
    to put where the placeholder ``__X__`` is."""
    doc = copy.deepcopy(doc)
    paths = _paths(doc)
    op = rng.randrange(4)
    path = rng.choice(paths)
    if op == 0:
        return _set(doc, path, copy.deepcopy(rng.choice(VALUES))), None
    if op == 1:  # delete a key or item
        parents = [p for p in paths if p]
        if parents:
            victim = rng.choice(parents)
            node = doc
            for part in victim[:-1]:
                node = node[part]
            del node[victim[-1]]
        return doc, None
    if op == 2:  # add a key
        dicts = [p for p in paths if isinstance(_get(doc, p), dict)]
        target = _get(doc, rng.choice(dicts))
        target[rng.choice(extra_keys)] = copy.deepcopy(rng.choice(VALUES))
        return doc, None
    return _set(doc, path, "__X__"), "raw"


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    op = rng.randrange(5)
    n = len(data)
    if op == 0:
        return data[: rng.randrange(n + 1)]
    if op == 1 and n:
        i = rng.randrange(n)
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
    if op == 2:
        i = rng.randrange(n + 1)
        return data[:i] + rng.randbytes(rng.randrange(1, 16)) + data[i:]
    if op == 3 and n:
        i = rng.randrange(n)
        return data[:i] + data[i + rng.randrange(1, 64) :]
    return rng.choice([b"", b"null", b"[]", b"{}", rng.randbytes(64), b"\xff\xfe\x00garbage",
                       b"\x80\x04\x95pickle", b"PK\x03\x04zip"])


def _special(rng: random.Random, path: Path) -> str:
    """Replace ``path`` by a FIFO, a link to /dev/zero, a folder or nothing."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    kind = rng.choice(["fifo", "zero", "dir", "missing"])
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    elif kind == "dir":
        path.mkdir()
    return kind


def mutate_sidecar(rng: random.Random, text: str) -> bytes:
    if rng.random() < 0.25:
        return _mutate_bytes(rng, text.encode())
    doc, raw = _mutate_tree(rng, json.loads(text),
                            ["extra", "hidden", "widths", "fc", "mean", "std", "version", "format",
                             "model", "options", "in_shape", "num_classes", "name"])
    out = json.dumps(doc)
    if raw:
        out = out.replace('"__X__"', rng.choice(RAW_JSON))
    if rng.random() < 0.1:  # a duplicate key
        out = out.replace("{", '{"version": 1, ', 1)
    return out.encode()


def mutate_weights(rng: random.Random, data: bytes) -> bytes:
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + hlen])
    body = data[8 + hlen :]
    op = rng.randrange(6)
    if op <= 2:  # edit the header and re-frame it
        names = [k for k in header if k != "__metadata__"]
        name = rng.choice(names)
        field = rng.choice(["shape", "dtype", "data_offsets", "rename", "delete", "metadata"])
        entry = header[name]
        if field == "shape":
            entry["shape"] = rng.choice([[], [5], [0, 16], [-1, 16], [2**40, 16], [10**6, 10**6],
                                         [16, 5], [5, 16, 1], [1.5, 16], ["5", 16]])
        elif field == "dtype":
            entry["dtype"] = rng.choice(["F64", "F16", "BF16", "I64", "U8", "BOOL", "X", None, 7])
        elif field == "data_offsets":
            a, b = entry["data_offsets"]
            entry["data_offsets"] = rng.choice([[b, a], [a, b + 4], [a - 4, b - 4], [0, 2**62],
                                                [-1, b], [a, a], [a], "x"])
        elif field == "rename":
            header[rng.choice(["layers.9.weight", "x", "", name + "x"])] = header.pop(name)
        elif field == "delete":
            del header[name]
        else:
            header["__metadata__"] = rng.choice([{"format": 1}, {"a": {"b": "c"}}, [], None])
        blob = json.dumps(header).encode()
        return struct.pack("<Q", len(blob)) + blob + body
    if op == 3:  # the length field
        return struct.pack("<Q", rng.choice([0, 1, hlen - 1, hlen + 1, 2**63, len(data)])) + data[8:]
    if op == 4 and body:  # the weights' bytes: changes the values, the analysis must follow
        i = 8 + hlen + rng.randrange(len(body))
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
    return _mutate_bytes(rng, data)


def mutate_study(rng: random.Random, text: str) -> bytes:
    r = rng.random()
    if r < 0.2:
        lines = text.splitlines(keepends=True)
        i = rng.randrange(len(lines))
        op = rng.randrange(5)
        if op == 0:
            lines.insert(i, lines[i])  # a duplicate key, mostly
        elif op == 1:
            del lines[i]
        elif op == 2:
            lines[i] = "  " + lines[i]
        elif op == 3:
            lines[i] = lines[i].lstrip()
        else:
            return _mutate_bytes(rng, text.encode())
        return "".join(lines).encode()
    if r < 0.3:
        keys = [f"train.{k}" for k in ("lr", "epochs", "batch_size", "momentum")] + ["seed", "name"]
        sizes = {k: rng.choice([2, 3, 7, 10**4, 10**5]) for k in rng.sample(keys, rng.randrange(1, 4))}
        doc = {**STUDY, "grid": {k: f"__{k}__" for k in sizes}}
        if rng.random() < 0.3:
            doc["max_runs"] = rng.choice([1, 10, 10**9, 0, -5, "x"])
        out = _dump(doc)
        for key, n in sizes.items():  # long lists written as flow text: dumping them is slow
            out = out.replace(f"__{key}__", "[" + ", ".join(map(str, range(1, n + 1))) + "]")
        return out.encode()
    if r < 0.35:
        return rng.choice([
            b"", b"# nothing\n", b"---\n", b"\xff\xfe bad utf8", b"[1, 2]\n", b"null\n",
            b"a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b]\n",
            b"<<: {name: x}\n", b"name: " + b"x" * 300_000 + b"\n", b"name: a\nname: b\n",
        ])
    doc, raw = _mutate_tree(rng, STUDY, ["name", "seeds", "grid", "variants", "max_runs", "tarin",
                                         "per_model_options", "model_options", "hidden", "lr",
                                         "epochs", "method", "attacks", "epsilons", "dataset",
                                         "options", "steps", "n_queries", "seed", "keeps",
                                         "interventions", "max_hours", "deepfool_options"])
    out = _dump(doc)
    if raw:
        out = out.replace("__X__", rng.choice(RAW_YAML))
    return out.encode()


def _dump(doc: Any) -> str:
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, width=10**6)


# -- command lines: --set values, keep and budget lists, attack options ------------------------
SET_KEYS = ["name", "lr", "epochs", "seed", "method", "steps", "eps", "beta", "alpha", "rank",
            "rank_ratio", "layers", "lambda_l1", "lambda_nuclear", "l1_mode", "svd_every",
            "factorize_output", "ortho", "random_start", "warmup_epochs", "step_size", "nope", ""]
SET_VALUES = ["1e-3", "0", "-1", "1", "3", "1e9", "1000000000", "18446744073709551616", "nan",
              "inf", "-inf", "true", "null", "~", "", "*x", "&a 1", "[1, 2]", "{a: 1}", "x" * 300,
              "layers.0", "layers.2", "^$", "(", "all", "natural", "pgd-adv", "proximal",
              "!!python/object/apply:os.system ['true']", "0x10", "1_000", "0.5"]
NUMBERS = ["0", "1", "2", "-1", "3", str(10**9), str(10**12), str(2**64), str(-(2**64)), "1.5",
           "x", "nan"]
METHOD_NAMES = ["natural", "l1", "nuclear", "l1+nuclear", "product-l1", "fgsm-adv", "pgd-adv",
                "trades", "lowrank", "nope"]
BOUND = ["--max-hours", "0.0002"]  # ≈ 0.7 s of estimated work: accepted cases stay within CASE_SECONDS
ATTACK_NAMES = ["fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "square", "autoattack",
                "deepfool", "pdg"]


def _number_list(rng: random.Random, unit: bool) -> str:
    """A comma-separated list: shares in (0, 1] (``unit``) or budgets, of hostile lengths and values."""
    size = rng.choice([1, 2, 3, 5, 1000, 1001, 15_000])
    pool = ["0.5", "1", "0.25", "0.1"] if unit else ["0", "0.1", "0.3", "1", "1e9"]
    values = [rng.choice(pool) for _ in range(min(size, 5))]
    if size > 5:
        values = [f"{(i + 1) / size:.6f}" for i in range(size)] if unit else [str(i) for i in range(size)]
    if rng.random() < 0.2:
        values[rng.randrange(len(values))] = rng.choice(["0", "-0.1", "1.5", "nan", "inf", "x", ""])
    return ",".join(values)


def mutate_cli(rng: random.Random, checkpoint: Path, out: Path) -> tuple[list[str], dict[str, Any]]:
    """A hostile command line for train, evaluate or intervene, and what an accepted one must
    produce (``{"method": name}``: the trained model's method; ``{"rows": n}``: output rows)."""
    command = rng.choice(["train", "evaluate", "intervene"])
    if command == "train":
        method = rng.choice(METHOD_NAMES)
        argv = ["train", "--dataset", "synthetic", "--model", "mlp", "--hidden", "5", "--epochs", "1",
                "--no-progress", "--out", str(out), "--method", method, *BOUND]
        for _ in range(rng.randrange(4)):
            argv += ["--set", f"{rng.choice(SET_KEYS)}={rng.choice(SET_VALUES)}"]
        if rng.random() < 0.2:
            argv += [rng.choice(["--seed", "--epochs", "--adv-steps"]), rng.choice(NUMBERS)]
        return argv, {"method": method}
    attack = rng.choice(ATTACK_NAMES)
    argv = [command, str(checkpoint), "--attack", attack, "--n", rng.choice(["4", "8", "0"]),
            "--format", "csv", *BOUND]
    expect: dict[str, Any] = {}
    if command == "evaluate":
        eps = _number_list(rng, unit=False)
        argv += ["--eps", eps, "--no-sanity"]
        expect["rows"] = len(eps.split(","))
    else:
        flag = rng.choice(["--svd-keep", "--prune-keep"])
        keeps = _number_list(rng, unit=True)
        argv += [flag, keeps, "--eps", rng.choice(["0.1", "0", "-1", "nan"]), "--no-deepfool"]
        expect["rows"] = len(keeps.split(","))
    for option in ("--steps", "--restarts", "--queries", "--seed"):
        if rng.random() < 0.25:
            argv += [option, rng.choice(NUMBERS)]
    if rng.random() < 0.1:  # a bound may only be made smaller or hostile here: cases stay short
        argv += ["--max-hours", rng.choice(["0", "-1", "nan", "inf", "x", "1e-12"])]
    return argv, expect


def check_cli(argv: list[str], expect: dict[str, Any], stdout: str, out: Path) -> str | None:
    """None when an accepted command line produced what it asked for."""
    if "method" in expect:
        meta = json.loads((out / "model.json").read_text())
        name = meta["train_config"]["method"]["name"]
        return None if name == expect["method"] else f"trained {name!r}, asked for {expect['method']!r}"
    rows = list(csv.DictReader(io.StringIO(stdout)))
    return None if len(rows) == expect["rows"] else f"{len(rows)} rows for {expect['rows']} values"


# -- oracles ---------------------------------------------------------------------------------
def check_analysis(stdout: str, weights: Path, baseline: str) -> str | None:
    """None when ``stdout`` is the right analysis of the weights ``weights`` holds."""
    import numpy as np
    from safetensors.numpy import load

    rows = list(csv.DictReader(io.StringIO(stdout)))
    base = list(csv.DictReader(io.StringIO(baseline)))
    if [r["layer"] for r in rows] != [r["layer"] for r in base] or rows[0].keys() != base[0].keys():
        return "layers or columns differ from the checkpoint's"
    tensors = load(weights.read_bytes())
    for row in rows:
        w = tensors[row["layer"] + ".weight"].astype(np.float64)
        w = w.reshape(w.shape[0], -1)
        if row["shape"] != f"{w.shape[0]}x{w.shape[1]}":
            return f"{row['layer']}: shape {row['shape']} vs {w.shape}"
        for column, want in (("frobenius_norm", np.linalg.norm(w)), ("l1_norm", np.abs(w).sum()),
                             ("spectral_norm", np.linalg.norm(w, 2))):
            got = float(row[column])
            if not np.isfinite(got) or abs(got - want) > 1e-4 * max(1.0, abs(want)):
                return f"{row['layer']}.{column}: {got} vs {want}"
    return None


def check_count(stdout: str, data: bytes) -> str | None:
    """None when the dry run's count is the number of distinct runs of the study."""
    import math

    import yaml

    from rankrobust.experiments import expand, study_from_dict

    doc = yaml.safe_load(data)
    study = study_from_dict(doc, default_name="study")
    runs = expand(study)
    upper = sum(math.prod(len(v) for v in {**study.grid, **(var.get("grid") or {})}.values())
                * len(study.seeds) for var in (list(study.variants) or [{}]))
    want = f"study {study.name}: {len(runs)} runs; dry run, nothing written\n"
    first, _, rest = stdout.partition("\n")
    estimate, _, data = rest.partition("\n")
    if (first + "\n" != want or not estimate.startswith("estimated work: ≈ ")
            or not data.startswith("data: ") or data.count("\n") != 1):
        return f"printed {stdout!r}, expected {want!r}, the estimate and the data line"
    if not 1 <= len(runs) <= min(upper, study.max_runs):
        return f"printed {stdout!r}, expected {want!r} (≤ {upper})"
    return None


# -- the worker (a subprocess with capped address space) -------------------------------------
class _CaseTimeout(BaseException):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _CaseTimeout


def _cap_memory() -> None:
    import resource

    with open("/proc/self/status") as fh:
        size = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))


def _call(argv: list[str]) -> tuple[Any, str, str, float]:
    from rankrobust.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    signal.alarm(int(CASE_SECONDS) + 5)  # a Python-level hang
    faulthandler.dump_traceback_later(3 * CASE_SECONDS, exit=True)  # a hang inside C code
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc: Any = main(argv)
    except _CaseTimeout:
        rc = "timeout"
    except BaseException:  # noqa: BLE001 - the finding is the traceback itself
        rc = "traceback: " + traceback.format_exc(limit=4)
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
    return rc, out.getvalue(), err.getvalue(), time.perf_counter() - start


def _judge(rc: Any, out: str, err: str, seconds: float) -> str | None:
    if seconds > CASE_SECONDS:
        return f"took {seconds:.1f}s"
    if rc == 2:
        if not err.startswith("rankrobust: error: ") or err.count("\n") != 1 or out:
            return f"exit 2 without exactly one error line: {err!r} / {out[:200]!r}"
        return None
    if rc == 0:
        return None if not err else f"exit 0 with stderr {err[:300]!r}"
    return f"exit {rc!s:.2000}: {err[:300]!r}"


def worker(root: Path) -> None:
    import torch

    from rankrobust.checkpoint import save_checkpoint
    from rankrobust.models import ModelSpec

    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, _alarm)
    spec = ModelSpec("mlp", (1, 4, 4), 3, {"hidden": [5, 7]})
    torch.manual_seed(0)
    weights = save_checkpoint(root / "base", spec.build(), spec, {"dataset": "synthetic"})
    base_weights, base_sidecar = weights.read_bytes(), weights.with_suffix(".json").read_text()
    study_text = _dump(STUDY)
    case = root / "case"
    case.mkdir()
    rc, baseline, err, _ = _call(["analyze", str(weights), "--format", "csv"])
    assert rc == 0 and not err, (rc, err)
    (root / "base.yaml").write_text(study_text)
    rc, out, err, _ = _call(["sweep", str(root / "base.yaml"), "--dry-run", "--out", str(root / "o")])
    assert rc == 0 and check_count(out, study_text.encode()) is None, (rc, out, err)
    _cap_memory()  # everything is imported and warm: from here on at most 1 GiB more

    for i in range(CHECKPOINT_CASES):
        rng = random.Random(f"{SEED}-checkpoint-{i}")
        shutil.rmtree(case)
        case.mkdir()
        w, s = case / "model.safetensors", case / "model.json"
        w.write_bytes(mutate_weights(rng, base_weights) if rng.random() < 0.6 else base_weights)
        s.write_bytes(mutate_sidecar(rng, base_sidecar) if rng.random() < 0.7 else base_sidecar.encode())
        if w.read_bytes() == base_weights and s.read_bytes() == base_sidecar.encode():
            s.write_bytes(mutate_sidecar(rng, base_sidecar))
        kind = _special(rng, rng.choice([w, s])) if rng.random() < 0.03 else ""
        rc, out, err, seconds = _call(["analyze", str(case), "--format", "csv"])
        problem = _judge(rc, out, err, seconds)
        if problem is None and rc == 0:
            problem = check_analysis(out, w, baseline)
        print(json.dumps({"kind": "checkpoint", "case": i, "rc": str(rc)[:40], "seconds": seconds,
                          "problem": problem, "special": kind}), flush=True)

    for i in range(STUDY_CASES):
        rng = random.Random(f"{SEED}-study-{i}")
        shutil.rmtree(case)
        case.mkdir()
        path = case / "study.yaml"
        data = mutate_study(rng, study_text)
        path.write_bytes(data)
        kind = _special(rng, path) if rng.random() < 0.02 else ""
        out_dir = case / "out"
        rc, out, err, seconds = _call(["sweep", str(path), "--dry-run", "--out", str(out_dir)])
        problem = _judge(rc, out, err, seconds)
        if problem is None and rc == 0:
            problem = check_count(out, data)
        if problem is None and sorted(p.name for p in case.iterdir()) != (["study.yaml"] if kind != "missing" else []):
            problem = f"the dry run wrote {sorted(p.name for p in case.iterdir())}"
        print(json.dumps({"kind": "study", "case": i, "rc": str(rc)[:40], "seconds": seconds,
                          "problem": problem, "special": kind}), flush=True)

    cli_weights = save_checkpoint(root / "cli", ModelSpec("mlp", (1, 16, 16), 4, {"hidden": [5]}).build(),
                                  ModelSpec("mlp", (1, 16, 16), 4, {"hidden": [5]}), {"dataset": "synthetic"})
    for i in range(CLI_CASES):
        rng = random.Random(f"{SEED}-cli-{i}")
        shutil.rmtree(case)
        case.mkdir()
        argv, expect = mutate_cli(rng, cli_weights, case / "out")
        rc, out, err, seconds = _call(argv)
        problem = _judge(rc, out, err, seconds)
        if problem is None and rc == 0:
            problem = check_cli(argv, expect, out, case / "out")
        print(json.dumps({"kind": "cli", "case": i, "rc": str(rc)[:40], "seconds": seconds,
                          "problem": problem, "argv": [a[:60] for a in argv]}), flush=True)


# -- the test --------------------------------------------------------------------------------
def test_fuzz_cli_every_outcome_is_a_result_or_one_error_line(tmp_path: Path) -> None:
    marker = Path("/tmp") / MARKER
    marker.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
           "LANGUAGE": "C", "LC_ALL": "C"}  # C locale: argparse's gettext skips its file search
    env.pop("RANKROBUST_DEBUG", None)
    proc = subprocess.run([sys.executable, __file__, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(records) == CHECKPOINT_CASES + STUDY_CASES + CLI_CASES >= 1150
    problems = [r for r in records if r["problem"]]
    assert not problems, "\n".join(f"{r['kind']} case {r['case']}: {r['problem']}" for r in problems[:10])
    assert max(r["seconds"] for r in records) < CASE_SECONDS
    outcomes = {(r["kind"], r["rc"]) for r in records}
    assert {("checkpoint", "0"), ("checkpoint", "2"), ("study", "0"), ("study", "2"),
            ("cli", "0"), ("cli", "2")} <= outcomes
    assert not marker.exists()


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
