"""Bit-identity of solo training between two source trees (a refactor must not move a number).

Usage: ``git archive BASE src | tar -x -C /tmp/base`` (or ``git worktree add /tmp/base BASE``),
then ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/same_numbers.py /tmp/base/src``.

Each case is one ``fit`` (``rankrobust.training.fit``) on the synthetic data, with structure
tracking on, run in a fresh process (1 torch thread) with ``PYTHONPATH`` set to one tree: the
base tree given, then this checkout's ``src``. Each process saves the trained model's state dict,
the per-epoch metrics (``epoch_seconds`` dropped: a wall time), the structure records and the
selected epoch; then every tensor is compared with ``torch.equal`` and every number with ``==``
(NaN equal to NaN). The last line is one JSON object: case → true when bit-identical.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

NEW = str(Path(__file__).resolve().parents[1] / "src")
CASES: dict[str, dict[str, Any]] = {
    "natural-mlp": {"model": "mlp", "method": {"name": "natural"}},
    "natural-lenet5": {"model": "lenet5", "method": {"name": "natural"}},
    "l1+nuclear-mlp": {"model": "mlp", "method": {"name": "l1+nuclear", "lambda_l1": 1e-3,
                                                  "lambda_nuclear": 1e-2}},
    "l1-prox-lenet5": {"model": "lenet5", "method": {"name": "l1", "lambda_l1": 1e-3,
                                                     "l1_mode": "proximal"}},
    "pgd-adv-lenet5": {"model": "lenet5", "method": {"name": "pgd-adv", "eps": 0.1, "steps": 3}},
    "lowrank-mlp": {"model": "mlp", "method": {"name": "lowrank", "rank": 4}},
    "trades-mlp": {"model": "mlp", "method": {"name": "trades", "eps": 0.1, "steps": 2}},
    "spectral-norm-mlp": {"model": "mlp", "method": {"name": "spectral-norm"}},
    "weight-decay-sgd-step-mlp": {"model": "mlp", "method": {"name": "weight-decay",
                                                             "lambda_wd": 1e-3},
                                  "train": {"optimizer": "sgd", "schedule": "step",
                                            "lr_step_epochs": 1, "lr": 0.05}},
    "select-val-robust-mlp": {"model": "mlp", "method": {"name": "fgsm-rs", "eps": 0.1},
                              "train": {"validation_size": 128, "select_epoch": "val_robust_acc",
                                        "val_attack_n": 64, "val_attack_steps": 3}},
}
CODE = """
import json, sys, torch
torch.set_num_threads(1)
from rankrobust.configuration import from_dict
from rankrobust.training.config import TrainConfig
from rankrobust.training.fit import fit
case = json.loads(sys.argv[1])
cfg = from_dict(TrainConfig, {"epochs": 2, "device": "cpu", "progress": False, "seed": 3,
                              "track_structure": True, "method": case["method"],
                              **case.get("train", {})}, "train")
opts = {"hidden": [32, 16]} if case["model"] == "mlp" else {}
r = fit("synthetic", case["model"], cfg, opts)
history = [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in r.result.history]
torch.save({"state": r.model.state_dict(), "history": history, "records": r.result.records,
            "best": r.result.best_epoch}, sys.argv[2])
"""


def same(a: Any, b: Any) -> bool:
    """Exact equality, recursively: tensors by ``torch.equal`` (and dtype), NaN equal to NaN."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.dtype == b.dtype and torch.equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def run(tree: str, case: dict[str, Any], out: Path) -> Any:
    done = subprocess.run([sys.executable, "-c", CODE, json.dumps(case), str(out)],
                          capture_output=True, text=True, timeout=900,
                          env={"PYTHONPATH": tree, "PATH": "/usr/bin:/bin",
                               "OMP_NUM_THREADS": "1", "HOME": tempfile.gettempdir()})
    if done.returncode:
        raise SystemExit(f"{tree}: {done.stderr[-2000:]}")
    return torch.load(out, weights_only=True)


def main() -> None:
    old = sys.argv[1] if len(sys.argv) > 1 else "/tmp/base/src"
    verdict: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in CASES.items():
            a = run(old, case, Path(tmp) / f"{name}.old.pt")
            b = run(NEW, case, Path(tmp) / f"{name}.new.pt")
            verdict[name] = same(a, b)
            rows = sum(len(v) for v in a["records"].values())
            print(f"{name:28s} identical={verdict[name]}  ({len(a['state'])} tensors, "
                  f"{len(a['history'])} epochs, {rows} structure rows)", flush=True)
    print(json.dumps(verdict))


if __name__ == "__main__":
    main()
