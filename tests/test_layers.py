"""The package's layers: every import (at module level and inside functions) points down, never in a cycle, and no
private name is imported from another module. Read from the source with ``ast``; nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "python" / "segsearch"

#: Each top-level part of the package and its layer: a module may import its own part and parts of lower layers.
#: (network and library are side by side above the engine; the library may use the network, not the reverse.)
LAYERS = {
    "errors": 0,
    "_core": 0,
    "engine": 1,
    "evaluation": 2,
    "network": 2,
    "library": 3,
    "distributed": 4,
    "sketch": 5,
    "gui": 6,
    "serve": 6,
    "cli": 7,
    "_deprecated": 8,
    "__init__": 9,
}
#: Modules that are not part of the layers (the package's own __init__ wires them all together).
TOP = {"segsearch", "segsearch._deprecated"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> list[str]:
    """The absolute module(s) a ``from ... import ...`` names: the module, or module.name where that is a module."""
    if node.level:
        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{a.name}" for a in node.names]


def imports(mods: dict[str, Path]):
    """(importer, imported module, imported names, line) for every import of a segsearch module."""
    out = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "segsearch":
                        out.append((mod, a.name, [], node.lineno))
            elif isinstance(node, ast.ImportFrom):
                names = resolve(mod, is_pkg, node)
                if not names[0].startswith("segsearch"):
                    continue
                known = [n for n in names[1:] if n in mods or n == "segsearch._core"]
                target = known[0] if known and len(known) == len(names) - 1 else names[0]
                if known and len(known) == len(names) - 1:
                    for k in known:
                        out.append((mod, k, [], node.lineno))
                else:
                    out.append((mod, names[0], [a.name for a in node.names], node.lineno))
                del target
    return out


def part(mod: str) -> str:
    parts = mod.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def test_every_part_has_a_layer():
    parts = {part(m) for m in modules()} | {"_core"}
    assert parts <= set(LAYERS), f"add to LAYERS: {sorted(parts - set(LAYERS))}"


def test_imports_point_down():
    wrong = []
    for src, dst, _, line in imports(modules()):
        if src in TOP:
            continue
        a, b = part(src), part(dst)
        if LAYERS[b] > LAYERS[a] or (LAYERS[b] == LAYERS[a] and a != b):
            wrong.append(f"{src}:{line} imports {dst} ({a} -> {b})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for src, dst, _, _ in imports(modules()):
        if src in TOP or dst in TOP:
            continue
        graph.setdefault(src, set()).add(dst)
    # Tarjan's strongly connected components
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_name_crosses_a_module():
    mods = modules()
    crossing = []
    for src, dst, names, line in imports(mods):
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        if dst != "segsearch._core" and private:
            crossing.append(f"{src}:{line} imports {private} from {dst}")
        if dst.rsplit(".", 1)[-1].startswith("_") and dst not in ("segsearch._core", "segsearch._deprecated"):
            crossing.append(f"{src}:{line} imports the private module {dst}")
    assert not crossing, "\n".join(crossing)


def test_engine_imports_no_torch_or_photos():
    """The engine (searching an index) never imports torch or PIL at module level: they load lazily."""
    heavy = []
    for mod, path in modules().items():
        if part(mod) != "engine":
            continue
        for node in ast.parse(path.read_text()).body:
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            heavy += [f"{mod}:{node.lineno} {n}" for n in names if n.split(".")[0] in ("torch", "PIL", "tflite")]
    assert not heavy, heavy


@pytest.mark.parametrize("mod", ["segsearch", "segsearch.engine", "segsearch.network.classes"])
def test_no_torch_at_import(mod):
    """Importing the package (and the engine, and the class names) loads neither torch nor PIL."""
    import subprocess
    import sys

    code = f"import sys, {mod}; print(sorted(m for m in ('torch', 'PIL') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_the_checker_sees_what_it_should(tmp_path):
    """The walk finds function-level imports and private names (a checker that finds nothing proves nothing)."""
    mods = modules()
    found = imports(mods)
    assert any(src == "segsearch.cli" and part(dst) == "library" for src, dst, _, _ in found)
    lazy = [(s, d) for s, d, _, _ in found if s == "segsearch.library.photo_index" and part(d) == "network"]
    assert lazy, "photo_index loads the network inside a function; the walk must see it"


def _defined_in(tree: ast.AST) -> set[str]:
    """Names a module defines: functions, classes, assigned names and attributes, class attributes, and private
    names it spells as strings (``getattr(x, "_name")``)."""
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
            out.add(n.attr)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("_"):
            out.add(n.value)
    return out


def private_attribute_uses(source: str) -> list[str]:
    """``x._name`` where ``x`` is not self / cls and this module defines no ``_name``: a private attribute of
    another module's object."""
    tree = ast.parse(source)
    defined = _defined_in(tree)
    return [
        f"{n.lineno}: {ast.unparse(n)}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
        and n.attr.startswith("_")
        and not n.attr.startswith("__")
        and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"))
        and n.attr not in defined
    ]


def test_no_private_attribute_crosses_a_module():
    found = [f"{mod}:{use}" for mod, path in modules().items() for use in private_attribute_uses(path.read_text())]
    assert not found, "private attributes used outside their module:\n" + "\n".join(found)


def test_private_attribute_check_can_fail():
    assert private_attribute_uses("def f(index):\n    return index._state\n") == ["2: index._state"]
    assert private_attribute_uses("class A:\n    def f(self, o):\n        self._x = o._x\n") == []
