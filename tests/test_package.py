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
    return {
        node.name: {t.targets[0].id: ast.literal_eval(t.value) for t in node.body if isinstance(t, ast.Assign)}
        for node in ast.parse(STUB.read_text()).body
        if isinstance(node, ast.ClassDef) and _is_enum(node)
    }


def _stub_properties() -> dict[str, set[str]]:
    return {
        node.name: {n.name for n in node.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"}
        for node in ast.parse(STUB.read_text()).body
        if isinstance(node, ast.ClassDef) and not _is_enum(node)
    }


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


PUBLIC = [
    "Index",
    "Query",
    "SearchResult",
    "PhotoIndex",
    "Hit",
    "Segmenter",
    "ShardedIndex",
    "open_folder",
    "build_index",
    "BuildOptions",
    "BuildReport",
    "SegsearchError",
    "IndexFormatError",
    "NotTrainedError",
    "OptionError",
    "DEFAULT_EPS",
    "simd_level",
    "supported_simd_levels",
    "set_simd_level",
]


def test_public_names_import_from_the_package():
    for name in PUBLIC:
        assert getattr(segsearch, name) is not None, name
    assert set(PUBLIC) <= set(segsearch.__all__)
    from segsearch.engine.index import Index
    from segsearch.library.build import build_index

    assert segsearch.Index is Index and segsearch.build_index is build_index


def test_every_error_is_a_segsearch_error_defined_in_errors():
    import inspect

    from segsearch import errors

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert len(classes) >= 7 and all(issubclass(c, errors.SegsearchError) for c in classes)
    for path in Path(segsearch.__file__).parent.rglob("*.py"):  # no exception class defined anywhere else
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b) for b in node.bases}
                assert not bases & {
                    "Exception",
                    "ValueError",
                    "RuntimeError",
                    "OSError",
                    "SegsearchError",
                    "IndexFormatError",
                    "FileNotFoundError",
                }, f"{path}: {node.name}"


OLD_PATHS = {
    "segsearch.index": ("Index", "segsearch.engine.index"),
    "segsearch.shards": ("add_shard", "segsearch.library.shards"),
    "segsearch.indexing": ("build_index", "segsearch.library.build"),
    "segsearch.ray_search": ("open_on_ray", "segsearch.distributed.search"),
    "segsearch.ray_indexing": ("EncoderPool", "segsearch.distributed.indexing"),
    "segsearch.ray_cluster": ("connect", "segsearch.distributed.cluster"),
    "segsearch.captions": ("Captions", "segsearch.library.captions"),
    "segsearch.photo_index": ("PhotoIndex", "segsearch.library.photo_index"),
    "segsearch.storage": ("atomic_write", "segsearch.engine.storage"),
    "segsearch.segmenter": ("ADE20K_CLASSES", "segsearch.network.classes"),
    "segsearch.sketch_io": ("read_sketch", "segsearch.network.palette"),
    "segsearch.sheet": ("contact_sheet", "segsearch.sketch.sheet"),
    "segsearch.sketch_model": ("Sketch", "segsearch.sketch.model"),
    "segsearch.synthetic": ("synthetic_probs", "segsearch.evaluation.synthetic"),
    "segsearch.index_folder": ("INDEX_FILE", "segsearch.engine.layout"),
}


def test_the_old_module_paths_import_with_a_deprecation_warning():
    """The 0.2 paths the README documented import for one release: the same objects, and a DeprecationWarning
    naming the new path (checked in a fresh interpreter, where the warning is raised on the first import)."""
    import json
    import subprocess
    import sys

    code = f"""
import importlib, json, warnings
out = {{}}
for old, (name, home) in {OLD_PATHS!r}.items():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        mod = importlib.import_module(old)
    new = importlib.import_module(home)
    out[old] = [getattr(mod, name) is getattr(new, name), [str(x.message) for x in w
                                                            if issubclass(x.category, DeprecationWarning)]]
print(json.dumps(out))
"""
    got = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    for old, (same, warned) in got.items():
        assert same, old
        assert len(warned) == 1 and old in warned[0] and "segsearch." in warned[0].split("import from ")[1], warned
    with __import__("pytest").raises(ModuleNotFoundError):
        __import__("segsearch.no_such_module")
