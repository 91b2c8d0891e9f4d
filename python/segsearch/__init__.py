"""segsearch: find photos by where things are — spatial-semantic image search with product quantization.

The C++ core (LUT builders, SIMD scan, exact scan) is ``segsearch._core``; this package is the Python facade.
Set ``SEGSEARCH_SIMD=scalar|avx2|avx512`` to force a SIMD level at import.
"""

from __future__ import annotations

import os as _os

from . import _core, _deprecated
from .engine.index import DEFAULT_EPS, Index, SearchResult
from .engine.query import Query
from .engine.sharded import ShardedIndex, open_folder
from .errors import IndexFormatError, NotTrainedError, OptionError, SegsearchError
from .library import backends as _backends
from .library.build import BuildReport, build_index
from .library.options import BuildOptions
from .library.photo_index import Hit, PhotoIndex

__version__ = "0.2.0"
__all__ = [
    "Index",
    "Query",
    "SearchResult",
    "PhotoIndex",
    "Hit",
    "ShardedIndex",
    "open_folder",
    "build_index",
    "BuildOptions",
    "BuildReport",
    "Segmenter",
    "SegsearchError",
    "IndexFormatError",
    "NotTrainedError",
    "OptionError",
    "DEFAULT_EPS",
    "simd_level",
    "supported_simd_levels",
    "set_simd_level",
]


def __getattr__(name: str):
    # The segmentation network is imported on first use: searching an index does not need it.
    if name == "Segmenter":
        from .network.segmenter import Segmenter

        return Segmenter
    raise AttributeError(f"module 'segsearch' has no attribute {name!r}")


def simd_level() -> str:
    """The SIMD level the core uses now: 'scalar', 'avx2' or 'avx512'."""
    return _core.simd_level()


def supported_simd_levels() -> list[str]:
    """SIMD levels compiled in and supported by this CPU, lowest first."""
    return _core.supported_simd_levels()


def set_simd_level(level: str) -> None:
    """Force a SIMD level (ValueError if this CPU or build lacks it)."""
    _core.set_simd_level(level)


_deprecated.install()


def _load_ray_backend():
    from .distributed import RAY_BACKEND

    return RAY_BACKEND


_backends.register_ray_backend(_load_ray_backend)  # the library's ray= options, served from the layer above it

if _os.environ.get("SEGSEARCH_SIMD"):
    try:
        set_simd_level(_os.environ["SEGSEARCH_SIMD"].strip().lower())
    except ValueError as _e:
        raise ImportError(f"SEGSEARCH_SIMD={_os.environ['SEGSEARCH_SIMD']!r}: {_e}") from None
