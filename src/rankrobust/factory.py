"""Model factories: the callable that builds a user's ``nn.Module``, named on the command line.

Grammar of a factory spec (``--model-factory``)::

    TARGET ":" NAME [ "(" literal arguments ")" ]

* TARGET is a dotted module name, imported with the current folder first on the import path (as
  ``python -m`` and pytest make it), or a path to a ``.py`` file (``nets/mynet.py``), imported
  under its file name with its own folder first on the path (so its sibling imports work);
* NAME is an attribute path in it (``make_net``, ``Nets.wide``): a function or a class;
* the optional call gives positional and keyword arguments, **Python literals only** (numbers,
  strings, True/False/None and tuples, lists, dicts and sets of them), read with
  :func:`ast.literal_eval`: ``mynet:make_wide(width=16)``, ``timm:create_model('resnet18',
  num_classes=10)``. A name, an attribute, an operator or a call among the arguments is refused;
  nothing in the spec is ever evaluated.

Keyword arguments also come from ``--factory-arg KEY=VALUE`` (typed like ``--set``); a keyword
given twice is refused. ``num_classes=K`` is added when the callable declares that parameter,
K is known and the user did not pass it. Every refusal is one line (ConfigError) that says what
was tried; an exception raised by the user's code itself (a bug in it) keeps its traceback.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from rankrobust.configuration import closest
from rankrobust.errors import ConfigError

MAX_SPEC_CHARS = 2000  # a spec is a name and a few literals; this bounds the parser's work
USAGE = "expected 'module:function', 'path/to/file.py:function' or 'module:function(literal, key=literal)'"


@dataclass(frozen=True)
class FactorySpec:
    """A parsed factory spec: where the callable lives, its name and literal call arguments."""

    text: str
    target: str  # a dotted module name or a path to a .py file
    name: str  # dotted attribute path inside the module
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_file(self) -> bool:
        return self.target.endswith(".py") or "/" in self.target or os.sep in self.target


def _dotted(node: ast.expr) -> str | None:
    """'a.b.c' for a Name/Attribute chain, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _literal(node: ast.expr, spec: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ConfigError(f"--model-factory {spec}: argument {ast.unparse(node)!r} is not a literal "
                          "(numbers, strings, True/False/None, tuples, lists, dicts); names, "
                          "operators and calls are never evaluated") from None


def parse_factory(spec: str) -> FactorySpec:
    """The :class:`FactorySpec` of ``spec`` (see the module docstring); ConfigError in one line
    when it is malformed or an argument is not a literal."""
    text = spec.strip()
    if len(text) > MAX_SPEC_CHARS:
        raise ConfigError(f"--model-factory: {len(text)} characters; a spec is at most {MAX_SPEC_CHARS}")
    target, sep, rest = text.partition(":")
    if not sep or not target.strip() or not rest.strip():
        raise ConfigError(f"--model-factory {spec!r}: {USAGE}")
    try:
        body = ast.parse(rest.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise ConfigError(f"--model-factory {spec!r}: {USAGE}") from None
    call = body if isinstance(body, ast.Call) else None
    name = _dotted(call.func if call is not None else body)
    if name is None:
        raise ConfigError(f"--model-factory {spec!r}: {USAGE}")
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    if call is not None:
        for arg in call.args:
            if isinstance(arg, ast.Starred):
                raise ConfigError(f"--model-factory {spec}: *arguments are not accepted")
            args.append(_literal(arg, spec))
        for kw in call.keywords:
            if kw.arg is None:
                raise ConfigError(f"--model-factory {spec}: **arguments are not accepted")
            kwargs[kw.arg] = _literal(kw.value, spec)
    return FactorySpec(text, target.strip(), name, tuple(args), kwargs)


def _cwd_entries() -> set[str]:
    return {"", ".", os.getcwd()}


@contextmanager
def _first_on_path(folder: str) -> Iterator[None]:
    """``folder`` first on ``sys.path`` for the duration (unless it is already there)."""
    present = folder in sys.path or (folder == os.getcwd() and bool(_cwd_entries() & set(sys.path)))
    if not present:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if not present and folder in sys.path:
            sys.path.remove(folder)


def _import_module(spec: FactorySpec) -> ModuleType:
    name = spec.target
    cwd = os.getcwd()
    try:
        with _first_on_path(cwd):
            return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            last = name.rpartition(".")[2]
            raise ConfigError(
                f"--model-factory {spec.text}: cannot import module {name!r}: not found in the "
                f"current folder {cwd} nor on the Python path; run from the folder that holds "
                f"{last}.py (or its package), or name the file: path/to/{last}.py:{spec.name}") from None
        raise ConfigError(f"--model-factory {spec.text}: importing module {name!r} failed: {exc}") from None
    except ImportError as exc:
        raise ConfigError(f"--model-factory {spec.text}: cannot import module {name!r} ({exc})") from None


def _import_file(spec: FactorySpec) -> ModuleType:
    path = Path(spec.target).expanduser()
    if path.suffix != ".py":
        raise ConfigError(f"--model-factory {spec.text}: {spec.target} is not a .py file")
    if not path.is_file():
        raise ConfigError(f"--model-factory {spec.text}: file {spec.target} not found (looked for "
                          f"{path.resolve()})")
    path = path.resolve()
    stem = path.stem
    digest = hashlib.blake2b(str(path).encode(), digest_size=6).hexdigest()
    for candidate in (stem, f"rankrobust_factory_{digest}"):  # imported before: the same module
        known = sys.modules.get(candidate)
        if known is not None and getattr(known, "__file__", None) == str(path):
            return known
    name = stem if stem.isidentifier() and stem not in sys.modules else f"rankrobust_factory_{digest}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"--model-factory {spec.text}: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # as an import would: dataclasses and pickling look it up
    try:
        with _first_on_path(str(path.parent)):
            module_spec.loader.exec_module(module)
    except ImportError as exc:
        del sys.modules[name]
        raise ConfigError(f"--model-factory {spec.text}: importing {path} failed: {exc}") from None
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_factory(spec: str | FactorySpec) -> Callable[..., Any]:
    """The callable named by ``spec`` (a string in the grammar above, or a parsed spec).

    ConfigError in one line when the spec is malformed, the module or file cannot be imported
    (saying where it was looked for), or the attribute is missing or not callable. Errors raised
    while the module runs (a bug in it) propagate with their traceback.
    """
    parsed = parse_factory(spec) if isinstance(spec, str) else spec
    target: Any = _import_file(parsed) if parsed.is_file else _import_module(parsed)
    for part in parsed.name.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(target) if not n.startswith("_") and callable(getattr(target, n, None))]
            raise ConfigError(f"--model-factory {parsed.text}: {parsed.target!r} has no attribute "
                              f"{parsed.name!r}{closest(part, names)}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"--model-factory {parsed.text}: {parsed.name!r} (of type "
                          f"{type(target).__name__}) is not callable")
    return target  # type: ignore[no-any-return]


def accepts_num_classes(factory: Callable[..., Any]) -> bool:
    """Whether ``factory`` declares a ``num_classes`` parameter that can be passed by keyword."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False
    return "num_classes" in params and params["num_classes"].kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def describe_call(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """``make(16, width=32)``: how the factory is called, for messages and provenance."""
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def build_from_factory(
    spec: str | FactorySpec,
    num_classes: int | None = None,
    factory_args: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Call the factory of ``spec`` with its literal arguments, ``factory_args`` (keywords) and,
    when it declares the parameter and it is known, ``num_classes``; check that it returns an
    ``nn.Module``. The arguments are checked against the signature before the call."""
    parsed = parse_factory(spec) if isinstance(spec, str) else spec
    factory = import_factory(parsed)
    kwargs = dict(parsed.kwargs)
    for key, value in (factory_args or {}).items():
        if key in kwargs:
            raise ConfigError(f"--factory-arg {key}: given twice (also in --model-factory {parsed.text})")
        kwargs[key] = value
    if num_classes is not None and "num_classes" not in kwargs and accepts_num_classes(factory):
        kwargs["num_classes"] = num_classes
    call = describe_call(parsed.name, parsed.args, kwargs)
    try:
        inspect.signature(factory).bind(*parsed.args, **kwargs)
    except TypeError as exc:  # arguments the factory does not take, or required ones missing
        raise ConfigError(f"--model-factory {parsed.text}: cannot be called as {call} ({exc}); give its "
                          "arguments as --factory-arg KEY=VALUE or in the spec") from None
    except ValueError:  # no signature to check (a builtin): let the call speak for itself
        pass
    folder = str(Path(parsed.target).resolve().parent) if parsed.is_file else os.getcwd()
    with _first_on_path(folder):  # a factory may import its siblings when called
        model = factory(*parsed.args, **kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--model-factory {parsed.text}: {call} returned an object of type "
                          f"{type(model).__name__}, not a torch.nn.Module")
    return model
