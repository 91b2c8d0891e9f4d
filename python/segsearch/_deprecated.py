"""The module paths of segsearch 0.2 (one flat package), importable for one more release.

``import segsearch.indexing`` (or any old path in :data:`MOVED`) gives a module that forwards every attribute to
the module's new home and warns once with a ``DeprecationWarning`` naming the new path. Nothing here is imported by
the package itself: the old paths are for code written against 0.2.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

#: old module path -> the new one (the same names, public ones at least, are there).
MOVED = {
    "segsearch.index": "segsearch.engine.index",
    "segsearch.query": "segsearch.engine.query",
    "segsearch.ranking": "segsearch.engine.ranking",
    "segsearch.codebook": "segsearch.engine.codebook",
    "segsearch.storage": "segsearch.engine.storage",
    "segsearch.index_folder": "segsearch.engine.layout",
    "segsearch.shards": "segsearch.engine.sharded",
    "segsearch.palette": "segsearch.network.palette",
    "segsearch.segmenter": "segsearch.network.segmenter",
    "segsearch.deeplab": "segsearch.network.deeplab",
    "segsearch.tflite_import": "segsearch.network.tflite_import",
    "segsearch.weights": "segsearch.network.weights",
    "segsearch.indexing": "segsearch.library.build",
    "segsearch.captions": "segsearch.library.captions",
    "segsearch.photo_index": "segsearch.library.photo_index",
    "segsearch.ray_cluster": "segsearch.distributed.cluster",
    "segsearch.ray_search": "segsearch.distributed.search",
    "segsearch.ray_indexing": "segsearch.distributed.indexing",
    "segsearch.sketch_model": "segsearch.sketch.model",
    "segsearch.sketch_io": "segsearch.sketch.files",
    "segsearch.sheet": "segsearch.sketch.sheet",
    "segsearch.synthetic": "segsearch.evaluation.synthetic",
}
#: names an old module had that now live in another new module than the rest of it.
ALSO = {
    "segsearch.shards": ("segsearch.library.shards",),
    "segsearch.index": ("segsearch.engine.search", "segsearch.engine.snapshot"),
    "segsearch.indexing": ("segsearch.library.lock", "segsearch.library.photos"),
    "segsearch.segmenter": ("segsearch.network.classes",),
}


class _Forward(types.ModuleType):
    """An old module path: attributes come from the new modules."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        for target in self.__dict__["_targets"]:
            mod = importlib.import_module(target)
            if hasattr(mod, name):
                return getattr(mod, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __dir__(self):
        names: set[str] = set()
        for target in self.__dict__["_targets"]:
            names.update(dir(importlib.import_module(target)))
        return sorted(names)


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        module = _Forward(spec.name)
        module.__dict__["_targets"] = (MOVED[spec.name],) + ALSO.get(spec.name, ())
        return module

    def exec_module(self, module) -> None:
        new = MOVED[module.__name__]
        module.__doc__ = f"Deprecated: moved to {new}."
        importlib.import_module(new)  # an error in the new module shows here, at import
        warnings.warn(
            f"{module.__name__} is deprecated and will be removed in the next release; import from {new} instead",
            DeprecationWarning,
            stacklevel=2,
        )


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, _Loader())
        return None


def install() -> None:
    """Make the old paths importable (idempotent)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
