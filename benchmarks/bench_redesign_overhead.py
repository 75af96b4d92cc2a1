"""Training time of the same runs: the code before methods became registered objects vs now.

Usage: ``git worktree add /tmp/pre c07defc`` (the last commit before the redesign), then
``.venv/bin/python benchmarks/bench_redesign_overhead.py /tmp/pre/src``. Each case trains the
same config 3 times with each code base, alternating, in fresh processes (1 torch thread), and
prints new/old ratios of the median training time; the last line is one JSON object of them.
"""
import json
import statistics
import subprocess
import sys
from pathlib import Path

OLD = sys.argv[1] if len(sys.argv) > 1 else "/tmp/pre/src"
NEW = str(Path(__file__).resolve().parents[1] / "src")
CASES = {
    "natural-lenet5": ("lenet5", {}, {"name": "natural"}),
    "l1+nuclear-lenet5": ("lenet5", {"regularizer": {"kind": "l1+nuclear", "lambda_l1": 3e-4, "lambda_nuclear": 1.0}},
                          {"name": "l1+nuclear", "lambda_l1": 3e-4, "lambda_nuclear": 1.0}),
    "pgd-lenet5": ("lenet5", {"adversarial": {"kind": "pgd", "eps": 0.1, "steps": 5}}, {"name": "pgd-adv", "eps": 0.1, "steps": 5}),
    "l1-mlp": ("mlp", {"regularizer": {"kind": "l1", "lambda_l1": 1e-3}}, {"name": "l1", "lambda_l1": 1e-3}),
}
CODE = """
import json, sys, torch
torch.set_num_threads(1)
from rankrobust.configuration import from_dict
from rankrobust.training.config import TrainConfig
from rankrobust.training.fit import fit
cfg = from_dict(TrainConfig, dict(epochs=4, device='cpu', progress=False, **json.loads(sys.argv[2])), 'train')
r = fit('mnist5k', sys.argv[1], cfg, {'hidden': [150, 100]} if sys.argv[1] == 'mlp' else {})
print(json.dumps({'seconds': r.result.seconds, 'acc': r.result.final['test_acc']}))
"""
out = {}
for name, (model, old_cfg, method) in CASES.items():
    times = {"old": [], "new": []}
    accs = {}
    for rnd in range(3):
        for which in (("old", "new") if rnd % 2 == 0 else ("new", "old")):
            cfg = old_cfg if which == "old" else {"method": method}
            res = subprocess.run([sys.executable, "-c", CODE, model, json.dumps(cfg)], capture_output=True,
                                 text=True, env={"PYTHONPATH": OLD if which == "old" else NEW, "PATH": "/usr/bin"})
            if res.returncode:
                print(res.stderr[-2000:])
                raise SystemExit(1)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            times[which].append(r["seconds"])
            accs[which] = r["acc"]
    ratio = statistics.median(times["new"]) / statistics.median(times["old"])
    out[name] = round(ratio, 3)
    print(name, {k: [round(t, 2) for t in v] for k, v in times.items()}, "acc", accs, "new/old", round(ratio, 3), flush=True)
print(json.dumps(out))
