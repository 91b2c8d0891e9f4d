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


def _stub_signatures() -> dict[str, list[tuple[str, str | None]]]:
    tree = ast.parse(STUB.read_text())
    sigs = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            args = node.args.args
            defaults = [None] * (len(args) - len(node.args.defaults)) + [ast.unparse(d) for d in node.args.defaults]
            sigs[node.name] = [(a.arg, d) for a, d in zip(args, defaults)]
    return sigs


def test_stub_lists_every_function_of_the_module():
    compiled = {n for n in dir(_core) if not n.startswith("_") and callable(getattr(_core, n))}
    assert set(_stub_signatures()) == compiled


def test_stub_parameters_and_defaults_match_the_module():
    for name, params in _stub_signatures().items():
        assert params == _compiled_signature(getattr(_core, name)), name


def test_the_version_has_one_source():
    from importlib.metadata import version

    assert version("segsearch") == segsearch.__version__  # pyproject reads it from __init__.py
