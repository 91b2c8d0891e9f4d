"""The options of an indexing run, one checked object for the local pipeline and the Ray indexer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..engine.checks import check_count, check_optional_count
from ..engine.ranking import get_ranking
from ..errors import OptionError

__all__ = ["BuildOptions"]


@dataclass(frozen=True)
class BuildOptions:
    """How :func:`~segsearch.library.build.build_index` indexes a folder; checked when made (:class:`OptionError`
    naming the option).

    ``size``: map size n (default 64 for a new index, the stored one when resuming; a different explicit value is
    an error). ``n_centroids``: K, 1..256 (default :func:`~segsearch.library.build.default_centroids` of the number
    of photos). ``device``: torch device (default: CUDA when available). ``weights``: the network's weights file
    (default: bundled). ``batch``: photos per network batch. ``sample``: photos the codebook is trained on.
    ``add``: append the photos a finished index does not hold yet, as a new shard. ``captions``: a CSV of
    (photo, caption) to store for text search. ``segmenter``: a ready
    :class:`~segsearch.network.segmenter.Segmenter` (else the default network, built when first needed).
    ``seed`` / ``niter``: k-means. ``workers``: processes decoding photos (0: in this one). ``ranking``:
    ``"balanced"`` (the default for a new index) or ``"l2"``, fixed when the index is made. ``keep_exact``: keep
    each photo's maps exactly (a few tens of kB per photo), so searches re-rank by the exact distance (default
    True for a new index; fixed when it is made). ``rerank``: the candidates a search re-ranks by default
    (default :data:`~segsearch.engine.index.DEFAULT_RERANK`; 0: none), recorded in the index.
    ``ray``: segment and encode the photos on Ray actors at this address (``"local"``, ``"auto"``,
    ``"HOST:PORT"``; see :mod:`segsearch.distributed.indexing`), ``ray_actors`` of them, each running torch with
    ``ray_threads`` threads (default: as many as in this process, so the index is the one a run without Ray
    writes); ``device`` is then the actors' (default: a GPU each where the cluster has GPUs) and ``segmenter`` is
    sent to them.
    """

    size: int | None = None
    n_centroids: int | None = None
    device: str | None = None
    weights: object = None
    batch: int = 8
    sample: int = 2000
    add: bool = False
    captions: object = None
    segmenter: object = None
    seed: int = 0
    niter: int = 20
    workers: int = 1
    ranking: str | None = None
    keep_exact: bool | None = None
    rerank: int | None = None
    ray: str | None = None
    ray_actors: int | None = None
    ray_threads: int | None = None

    def __post_init__(self):
        counts = {
            "size": (1, 1024),
            "n_centroids": (1, 256),
            "rerank": (0, None),
            "ray_actors": (1, None),
            "ray_threads": (1, None),
        }
        for name, (lo, hi) in counts.items():
            _as_option(name, check_optional_count, getattr(self, name), name, lo, hi)
        for name, lo in (("batch", 1), ("sample", 1), ("seed", 0), ("niter", 0), ("workers", 0)):
            _as_option(name, check_count, getattr(self, name), name, lo)
        if not isinstance(self.add, bool):
            raise OptionError("add", f"add must be True or False; got {self.add!r}")
        if self.keep_exact not in (None, True, False):
            raise OptionError("keep_exact", f"keep_exact must be True or False; got {self.keep_exact!r}")
        if self.keep_exact is False and self.rerank:
            raise OptionError("rerank", "rerank needs the exact maps, which keep_exact=False (--no-exact) leaves out")
        if self.ranking is not None:
            _as_option("ranking", get_ranking, self.ranking)
        if self.ray is not None:
            from .backends import ray_backend

            object.__setattr__(self, "ray", _as_option("ray", ray_backend().check_address, self.ray))
        elif self.device is not None:
            _check_device(self.device)  # on Ray, the actors' device: checked where they run

    def replace(self, **changes) -> BuildOptions:
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)


def _as_option(name: str, check, *args):
    """``check(*args)``, its ValueError as an :class:`OptionError` of ``name``."""
    try:
        return check(*args)
    except OptionError:
        raise
    except ValueError as e:
        raise OptionError(name, str(e)) from None


def _check_device(device) -> None:
    """OptionError for a device string torch does not know, or CUDA asked for where there is none."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise OptionError("device", f"device {device!r} is not a torch device ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError("device", f"device {device!r}: CUDA is not available here; use the cpu")
