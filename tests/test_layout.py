"""Architecture rules: imports flow one way; nothing heavy happens at import time."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rankrobust"
# package → rankrobust packages it must never import
FORBIDDEN = {
    "structure": {"training", "experiments", "report", "cli", "robustness", "attacks", "regularizers"},
    "attacks": {"training", "experiments", "report", "cli", "structure", "regularizers"},
    "regularizers": {"training", "experiments", "report", "cli", "attacks", "robustness"},
    "data": {"training", "experiments", "report", "cli", "models"},
    "models": {"training", "experiments", "report", "cli"},
    "training": {"experiments", "report", "cli"},
    "robustness": {"training", "experiments", "report", "cli"},
    "experiments": {"report", "cli", "export"},
    "report": {"cli", "training", "export"},
    "interventions": {"training", "experiments", "report", "cli"},
    # export only reads results (store, report's claims), like report
    "export": {"cli", "training"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rankrobust."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("rankrobust."):
                    found.add(alias.name.split(".")[1])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_flow_one_way(package: str) -> None:
    folder = SRC / package
    if not folder.exists():
        pytest.skip(f"rankrobust.{package} not present")
    bad = []
    for path in folder.rglob("*.py"):
        wrong = _imports(path) & FORBIDDEN[package]
        if wrong:
            bad.append(f"{path.relative_to(SRC)} imports {sorted(wrong)}")
    assert not bad, "; ".join(bad)
