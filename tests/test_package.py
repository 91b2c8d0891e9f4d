"""The installed package: its version has one source, and the type stubs ``_core.pyi`` match the compiled
module (the same functions, parameter names, order and defaults, read from pybind11's signature lines)."""
from __future__ import annotations

import ast
from pathlib import Path

import segsearch
from segsearch import _core

STUB = Path(segsearch.__file__).with_name("_core.pyi")


def _split_top_level(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return parts + ([cur.strip()] if cur.strip() else [])


def _compiled_signature(fn) -> list[tuple[str, str | None]]:
    """[(name, default or None)] from pybind11's first docstring line ``name(a: T, b: T = 1) -> R``."""
    line = fn.__doc__.splitlines()[0]
    inner = line[line.index("(") + 1 : line.rindex(") ->")]
    out = []
    for part in _split_top_level(inner):
        name, _, rest = part.partition(":")
        _, eq, default = rest.rpartition(" = ")
        out.append((name.strip(), default.strip() if eq else None))
    return out


def _params(node: ast.FunctionDef) -> list[tuple[str, str | None]]:
    args = node.args.args
    defaults = [None] * (len(args) - len(node.args.defaults)) + [ast.unparse(d) for d in node.args.defaults]
    return [(a.arg, d) for a, d in zip(args, defaults)]


def _stub_signatures() -> dict[str, list[tuple[str, str | None]]]:
    """Functions: their parameters; classes: their __init__'s, without self."""
    sigs = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            sigs[node.name] = _params(node)
        elif isinstance(node, ast.ClassDef) and not _is_enum(node):
            init = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
            sigs[node.name] = _params(init)[1:]
    return sigs


def _is_enum(node: ast.ClassDef) -> bool:
    return any(ast.unparse(b).endswith("Enum") for b in node.bases)


def _stub_enums() -> dict[str, dict[str, int]]:
    return {node.name: {t.targets[0].id: ast.literal_eval(t.value) for t in node.body if isinstance(t, ast.Assign)}
            for node in ast.parse(STUB.read_text()).body if isinstance(node, ast.ClassDef) and _is_enum(node)}


def _stub_properties() -> dict[str, set[str]]:
    return {node.name: {n.name for n in node.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"}
            for node in ast.parse(STUB.read_text()).body if isinstance(node, ast.ClassDef) and not _is_enum(node)}


def test_stub_lists_every_function_of_the_module():
    compiled = {n for n in dir(_core) if not n.startswith("_") and callable(getattr(_core, n))}
    assert set(_stub_signatures()) | set(_stub_enums()) == compiled


def test_stub_enums_match_the_module():
    for name, members in _stub_enums().items():
        assert {k: int(v) for k, v in getattr(_core, name).__members__.items()} == members, name


def test_stub_parameters_and_defaults_match_the_module():
    for name, params in _stub_signatures().items():
        obj = getattr(_core, name)
        if isinstance(obj, type):  # a bound class: its constructor, less self
            assert params == _compiled_signature(obj.__init__)[1:], name
            public = {n for n in dir(obj) if not n.startswith("_")}
            assert _stub_properties()[name] == public, name
        else:
            assert params == _compiled_signature(obj), name


def test_the_version_has_one_source():
    from importlib.metadata import version

    assert version("segsearch") == segsearch.__version__  # pyproject reads it from __init__.py
