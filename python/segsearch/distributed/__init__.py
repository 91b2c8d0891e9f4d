"""Indexing and search on a Ray cluster: :mod:`.cluster` (connecting, calls to actors), :mod:`.search` (an index
folder's shards searched by actors, :func:`~.search.open_on_ray`), :mod:`.indexing` (photos segmented and encoded
by actors). Ray itself is imported on first use; install it with ``pip install "segsearch[ray]"``.

:data:`RAY_BACKEND` is what the library's ``ray=`` options (``build_index``, ``PhotoIndex.open``) run on
(registered by the package's ``__init__``, see :mod:`segsearch.library.backends`).
"""

from __future__ import annotations

from .cluster import check_address


class RayBackend:
    """The library's ``ray=`` options, served by this package."""

    check_address = staticmethod(check_address)

    @staticmethod
    def encoder_pool(address: str, **options):
        """Actors that segment and encode photos for the build pipeline (:class:`.indexing.EncoderPool`)."""
        from .indexing import EncoderPool

        return EncoderPool(address, **options)

    @staticmethod
    def open_search(index_dir, address: str, *, actors: int | None = None):
        """An index folder searched by actors (:func:`.search.open_on_ray`)."""
        from .search import open_on_ray

        return open_on_ray(index_dir, address, actors=actors)


RAY_BACKEND = RayBackend()

__all__ = ["RAY_BACKEND", "RayBackend", "check_address"]
