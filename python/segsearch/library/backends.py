"""Where the library's ``ray=`` options are served from, without the library importing the layer above it.

``build_index(ray=...)`` and ``PhotoIndex.open(ray=...)`` run on Ray, whose code (:mod:`segsearch.distributed`)
sits above the library and uses it. So the library asks this module for "the Ray backend", and the package's
``__init__`` (which wires the layers together) registers a loader for it: the dependency points down, and
``import segsearch`` still imports neither Ray nor :mod:`segsearch.distributed`.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import SegsearchError

__all__ = ["register_ray_backend", "ray_backend"]

_loader: Callable[[], object] | None = None
_backend = None


def register_ray_backend(loader: Callable[[], object]) -> None:
    """Serve ``ray=`` options with ``loader()``: an object with ``check_address(address) -> str``,
    ``encoder_pool(address, **options)`` (see :class:`segsearch.distributed.indexing.EncoderPool`) and
    ``open_search(index_dir, address, *, actors=None)`` (see :func:`segsearch.distributed.search.open_on_ray`),
    loaded on first use."""
    global _loader, _backend
    _loader, _backend = loader, None


def ray_backend():
    """The registered Ray backend (loaded now if it was not yet)."""
    global _backend
    if _backend is None:
        if _loader is None:
            raise SegsearchError("ray= needs segsearch.distributed, which is not registered: import segsearch")
        _backend = _loader()
    return _backend
