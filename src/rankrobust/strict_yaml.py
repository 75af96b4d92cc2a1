"""The one YAML reader of the package: PyYAML's SafeLoader, hardened (:class:`StrictLoader`).

Every YAML text rankrobust reads (study files, the built-in presets, ``--set`` values) goes
through :func:`load_yaml`, so none skips the hardening: no aliases (a "billion laughs" file is
refused before it is expanded), no duplicate or merge keys, nesting capped at
:data:`MAX_YAML_DEPTH`, and every refusal one ConfigError line with its line number.
"""

from __future__ import annotations

from typing import Any

import yaml

from rankrobust.configuration import brief, clip
from rankrobust.errors import ConfigError

MAX_YAML_DEPTH = 32

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: fast, nesting capped


class StrictLoader(_SafeLoader):  # type: ignore[misc]
    """PyYAML's SafeLoader without aliases (``*name``), duplicate keys or merge keys (``<<``),
    and with nesting capped at :data:`MAX_YAML_DEPTH` (each refusal a ``yaml.YAMLError`` with
    its line). An alias is a node reached twice in the composed document, so a "billion laughs"
    file is refused before it is expanded.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        seen: set[int] = set()
        stack: list[tuple[yaml.Node, int]] = [(node, 1)]
        while stack:
            current, depth = stack.pop()
            if id(current) in seen:
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not allowed", current.start_mark
                )
            seen.add(id(current))
            if depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", current.start_mark
                )
            if isinstance(current, yaml.SequenceNode):
                stack.extend((child, depth + 1) for child in current.value)
            elif isinstance(current, yaml.MappingNode):
                for key, value in current.value:
                    stack += [(key, depth + 1), (value, depth + 1)]
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(
                    None, None, "merge keys (<<) are not allowed", key_node.start_mark
                )
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {brief(key)}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, where: str) -> Any:
    """The data of the YAML ``text`` read with :class:`StrictLoader`; ConfigError naming
    ``where`` (and the line) for invalid or refused YAML."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{where}: invalid YAML{line}: {clip(problem)}") from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid YAML: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal of thousands of digits
        raise ConfigError(f"{where}: invalid YAML: {clip(str(exc), 120)}") from None
