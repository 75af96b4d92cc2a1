"""Every YAML read in the package goes through the hardened loader (rankrobust.strict_yaml):
a new ``yaml.safe_load`` anywhere else in src/ fails this test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rankrobust"
ALLOWED = {SRC / "strict_yaml.py"}
READERS = {"load", "load_all", "safe_load", "safe_load_all", "full_load", "full_load_all",
           "unsafe_load", "unsafe_load_all", "compose", "compose_all", "parse", "scan"}


def yaml_reads(source: str) -> list[int]:
    """Lines of ``source`` that read YAML with PyYAML directly: ``yaml.<reader>(...)`` under any
    alias of the module, a reader imported by name (``from yaml import safe_load``), or a
    PyYAML loader class used (``yaml.SafeLoader``, ``CLoader``, ...)."""
    tree = ast.parse(source)
    modules = {"yaml"}
    found: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "yaml"}
        elif (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "yaml"
              and any(a.name in READERS or a.name.endswith("Loader") for a in node.names)):
            found.append(node.lineno)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and (node.attr in READERS or node.attr.endswith("Loader"))):
            found.append(node.lineno)
    return sorted(found)


@pytest.mark.parametrize("snippet", [
    "import yaml\nyaml.safe_load(text)",
    "import yaml as y\ny.load(text, Loader=y.SafeLoader)",
    "from yaml import safe_load\nsafe_load(text)",
    "from yaml import CSafeLoader",
    "def f():\n    import yaml\n    return yaml.full_load(t)",
])
def test_the_finder_sees_a_direct_read(snippet: str) -> None:
    assert yaml_reads(snippet)


def test_writing_yaml_is_not_reading_it() -> None:
    assert yaml_reads("import yaml\nprint(yaml.safe_dump({'a': 1}))") == []


def test_only_strict_yaml_reads_yaml() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50
    offenders = {str(p.relative_to(SRC)): lines for p in files if p not in ALLOWED
                 and (lines := yaml_reads(p.read_text(encoding="utf-8")))}
    assert offenders == {}, f"read YAML through rankrobust.strict_yaml.load_yaml: {offenders}"
    assert yaml_reads((SRC / "strict_yaml.py").read_text(encoding="utf-8"))  # the one reader
