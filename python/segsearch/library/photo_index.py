"""Search an index folder made by ``segsearch index``: by photo, sketch, photo + partial sketch, and caption words.

>>> pi = PhotoIndex.open("my-index")
>>> for hit in pi.search(sketch="sky-over-road.png", text="bus", k=5):
...     print(hit.rank, hit.path, hit.distance, hit.text_score)

Ranking (the method's "text + proposed system"): without text, by spatial-semantic distance; with text and
no photo or sketch, by the captions' bm25 score (only photos whose captions hold a non-stop query word in some
form); with both, by text level (most distinct non-stop query words first, in any form, see
:mod:`segsearch.library.captions`), ties broken by distance.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..engine.checks import check_folder, check_k
from ..engine.class_shares import check_exclude
from ..engine.emphasis import check_weights
from ..engine.explain import explain as explain_parts
from ..engine.feedback import check_feedback, moved_probs, photo_probs
from ..engine.index import Index
from ..engine.layout import (
    CAPTIONS_FILE,
    INDEX_FILE,
    META_NETWORK,
    META_NETWORK_SHA256,
    META_PHOTOS_DIR,
    METADATA_FILE,
    WORK_DIR,
    resolve_inside,
)
from ..engine.query import Query, check_labels
from ..engine.sharded import ShardedIndex, codes_at, open_folder
from ..network.palette import make_palette
from .backends import ray_backend
from .captions import Captions, query_words
from .filters import MetadataColumns, make_filter
from .metadata import FILL_HINT, read_metadata

__all__ = ["ClassPart", "Hit", "PhotoIndex", "open_index"]

#: How many photo files' maps :meth:`PhotoIndex.segment` keeps.
MAPS_CACHE = 16
#: How many ``exclude`` masks :meth:`PhotoIndex.exclude_mask` keeps.
EXCLUDE_CACHE = 8


class ClassPart(NamedTuple):
    """One class's term of a result's distance (:attr:`Hit.explain`): the class's index, its name, and the term."""

    index: int
    name: str
    part: float

    def as_dict(self) -> dict:
        return {"class": self.index, "name": self.name, "part": self.part}


@dataclass(frozen=True)
class Hit:
    """One search result.

    ``distance``: the layout distance, NaN for a text-only search. ``text_score``: None without text, else the
    photo's text level, the number of distinct query words (stemmed, stop words left out unless the query has
    only stop words) found in its captions; it ranks text + layout searches. ``bm25``: for a text-only search,
    the captions' bm25 score that ranked it (higher is better), else None.

    ``path``: the photo's file, inside the photos folder (see :meth:`PhotoIndex.path`); None when the id is
    refused -- it leads outside the photos folder, names something that is not a regular file (a FIFO, a
    folder, a device), or there is no trusted photos folder -- and ``note`` then says why. Such a photo is
    never opened: show it as skipped.

    ``explain`` (a search with ``explain=True``, for results with a distance): the distance split by class, the
    :class:`ClassPart` of each class it sums, largest part first (parts of 0 left out); they add up to
    ``distance`` (see :mod:`segsearch.engine.explain`). None otherwise.
    """

    rank: int
    id: str | int
    path: Path | None
    distance: float
    text_score: int | None = None
    bm25: float | None = None
    note: str | None = None
    explain: tuple[ClassPart, ...] | None = None

    def as_dict(self) -> dict:
        """JSON-able: a NaN distance (text-only search) becomes None, a refused path None (with its note); with an
        explanation, ``"explain"``: a list of ``{"class", "name", "part"}``, largest part first."""
        out = {
            "rank": self.rank,
            "id": self.id,
            "path": None if self.path is None else str(self.path),
            "distance": None if math.isnan(self.distance) else self.distance,
            "text_score": self.text_score,
            "bm25": self.bm25,
            "note": self.note,
        }
        if self.explain is not None:
            out["explain"] = [p.as_dict() for p in self.explain]
        return out


class PhotoIndex:
    """An index folder: the index, where its photos are, their captions, and the network for photo queries."""

    def __init__(
        self,
        index: Index | ShardedIndex,
        *,
        photos_dir=None,
        captions: Captions | None = None,
        segmenter=None,
        device=None,
        weights=None,
        index_dir=None,
    ):
        self.index = index
        self.index_dir = None if index_dir is None else Path(index_dir)
        meta = index.metadata or {}
        root = photos_dir if photos_dir is not None else meta.get(META_PHOTOS_DIR)
        self.photos_dir = Path(root) if isinstance(root, (str, os.PathLike)) else None
        self._root, self._root_note = _photos_root(photos_dir, meta.get(META_PHOTOS_DIR))
        self.captions = captions
        self._segmenter = segmenter
        self._device, self._weights = device, weights
        self._maps_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.RLock()  # the network's loading and the maps cache: a server's threads share them
        self._columns: MetadataColumns | None = None
        self._exclude_masks: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        names = index.class_names or [str(i) for i in range(index.num_classes)]
        self.classes: list[str] = list(names)
        self.palette: np.ndarray = make_palette(index.num_classes)
        if segmenter is not None:
            self._check_segmenter(segmenter)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        index_dir,
        *,
        segmenter=None,
        device=None,
        weights=None,
        photos_dir=None,
        mmap: bool = True,
        ray: str | None = None,
        ray_actors: int | None = None,
    ) -> PhotoIndex:
        """Open ``index_dir`` (``index.segsearch``, the shards its ``shards.json`` lists, and optionally
        ``captions.sqlite``), memory-mapped: ``self.index`` is an :class:`Index`, or for a folder with shards a
        :class:`~segsearch.engine.sharded.ShardedIndex` searched as one.

        ``segmenter``: any object with ``classes`` and ``predict(images, size=n)`` (default: the network the
        index was built with, loaded on the first photo query, on ``device`` with ``weights``).
        ``photos_dir`` overrides where the photos are (default: the folder recorded at indexing time).
        ``ray``: search on Ray at this address (``"local"``, ``"auto"``, ``"HOST:PORT"``; see
        :mod:`segsearch.distributed.search`), the shards spread over ``ray_actors`` actors; the results are the same.
        """
        d = check_folder(index_dir, hint="; build it with 'segsearch index PHOTOS_DIR --out INDEX_DIR'")
        f = d / INDEX_FILE
        if not f.is_file():
            hint = (
                " (indexing did not finish: run the same 'segsearch index' command again to resume)"
                if (d / WORK_DIR).is_dir()
                else "; build it with 'segsearch index PHOTOS_DIR --out INDEX_DIR'"
            )
            raise FileNotFoundError(f"{d} has no {INDEX_FILE}{hint}")
        if ray is not None:
            index = ray_backend().open_search(d, ray, actors=ray_actors)
        else:
            index = open_folder(d, mmap=mmap)
        caps = _open_captions(d / CAPTIONS_FILE) if (d / CAPTIONS_FILE).is_file() else None
        return cls(
            index,
            photos_dir=photos_dir,
            captions=caps,
            segmenter=segmenter,
            device=device,
            weights=weights,
            index_dir=d,
        )

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return (
            f"PhotoIndex({self.index_dir or ''!s}: {len(self)} photos, {len(self.classes)} classes, "
            f"{self.size}x{self.size}, captions={'yes' if self.has_captions else 'no'})"
        )

    @property
    def size(self) -> int:
        return self.index.size

    @property
    def has_captions(self) -> bool:
        return self.captions is not None

    @property
    def photos_root(self) -> Path | None:
        """The photos folder, resolved, that ids are confined to; None when there is none to trust (see
        :attr:`photos_root_note`)."""
        return self._root

    @property
    def photos_root_note(self) -> str | None:
        """Why there is no :attr:`photos_root` (None when there is one)."""
        return self._root_note

    def path(self, id) -> Path | None:
        """The file of an indexed photo: its id, a relative path, joined to the photos folder and resolved; None
        when the id is refused (see :class:`Hit`; :meth:`locate` also says why). A missing file is not refused:
        opening it just fails."""
        return self.locate(id)[0]

    def locate(self, id) -> tuple[Path | None, str | None]:
        """(path, None) for an indexed photo that may be opened, else (None, why not). An index folder is
        untrusted input: an id must resolve (symlinks followed) to a regular file inside the photos folder, so
        absolute ids, ids with ``..`` or links leading out of it, FIFOs (opening one would wait forever),
        devices and folders are refused without being opened."""
        if self._root is None:
            return None, self._root_note
        s = str(id)
        if not s or "\0" in s:
            return None, "an empty id or one with a NUL byte is not a path"
        if Path(s).is_absolute():
            return None, "an absolute path: ids are paths relative to the photos folder"
        return resolve_inside(self._root, s)

    def _hit(self, rank: int, id_, distance: float, text_score=None, bm25=None) -> Hit:
        path, note = self.locate(id_)
        return Hit(rank, id_, path, distance, text_score, bm25, note)

    # ------------------------------------------------------------------ queries
    @property
    def segmenter(self):
        """The network for photo queries (loaded on first use)."""
        with self._lock:
            return self._load_segmenter()

    def _load_segmenter(self):
        if self._segmenter is None:
            from ..network.segmenter import Segmenter
            from ..network.weights import NETWORK

            meta = self.index.metadata or {}
            network, want = meta.get(META_NETWORK), meta.get(META_NETWORK_SHA256)
            if network != NETWORK:
                raise ValueError(
                    "this index was built with "
                    f"{'network ' + repr(network) if network else 'maps from an unknown network'}"
                    ", so photo queries need that network (from Python: PhotoIndex.open(..., segmenter=...)); "
                    "query by sketch or text instead"
                )
            seg = Segmenter.default(device=self._device, weights=self._weights, weights_sha256=want)
            if want and seg.weights_sha256 != want:
                raise ValueError(
                    f"this index was built with other weights of {network} (sha256 {want[:12]}..., "
                    f"these are {str(seg.weights_sha256)[:12]}...); pass --weights FILE with the "
                    "file it was built with"
                )
            self._check_segmenter(seg)
            self._segmenter = seg
        return self._segmenter

    def _check_segmenter(self, seg) -> None:
        n = len(seg.classes)
        if n != self.index.num_classes:
            raise ValueError(
                f"the network has {n} classes but the index has {self.index.num_classes}; "
                "the index was built with another network"
            )

    def segment(self, photo) -> np.ndarray:
        """Softmax maps float32 (C, n, n) of one photo (path, PIL image or array), at the index's map size.

        The maps of the last few photo files are cached (keyed by path, size and modification time), so
        searching again with the same photo and new strokes does not run the network again.
        """
        key = None
        if isinstance(photo, (str, os.PathLike)):
            p = Path(photo)
            if not p.is_file():
                raise FileNotFoundError(f"photo {photo} does not exist")
            st = p.stat()
            key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
            with self._lock:
                if key in self._maps_cache:
                    self._maps_cache.move_to_end(key)
                    return self._maps_cache[key]
        seg = self.segmenter  # loading the network raises its own errors (e.g. missing weights)
        try:
            maps = np.asarray(seg.predict([photo], size=self.size))[0]
        except (OSError, SyntaxError) as e:  # PIL's decoding errors
            raise ValueError(f"cannot read photo {photo}: {e}") from None
        if key is not None:
            maps.flags.writeable = False
            with self._lock:
                self._maps_cache[key] = maps
                while len(self._maps_cache) > MAPS_CACHE:
                    self._maps_cache.popitem(last=False)
        return maps

    def sketch_labels(self, sketch) -> np.ndarray:
        """A sketch as an int32 label map (-1 = unspecified): from an array, or a PNG path / PIL image."""
        from PIL import Image

        from ..network.palette import read_sketch

        if isinstance(sketch, (str, os.PathLike, Image.Image)):
            lab = read_sketch(sketch, self.palette, self.index.num_classes)
        else:
            lab = check_labels(sketch, "sketch")
        if lab.size and lab.max() >= self.index.num_classes:
            raise ValueError(
                f"the sketch uses class {int(lab.max())} but the index has classes 0..{self.index.num_classes - 1}"
            )
        return lab

    def query(self, *, image=None, maps=None, sketch=None, like=None, unlike=None, weights=None) -> Query | None:
        """The :class:`Query` for a photo (or its ``maps``) and/or a sketch, moved toward the photos of ``like`` and
        away from those of ``unlike`` (lists of ids; :mod:`segsearch.engine.feedback`), with the classes of
        ``weights`` emphasised (:meth:`search`); None if there is nothing to search for by layout."""
        if image is not None and maps is not None:
            raise ValueError("give the query photo either as image= or as its maps=, not both")
        liked, unliked = check_feedback(self.index, like, unlike)
        probs = self.segment(image) if image is not None else maps
        lab = None if sketch is None else self.sketch_labels(sketch)
        if len(liked) or len(unliked):
            if probs is None and not len(liked):
                raise ValueError(
                    "unlike= needs a query to move away from: give a photo, or like= some photos too"
                    + (" (a sketch alone only counts its drawn pixels)" if lab is not None else "")
                )
            if probs is not None:
                probs = Query.image(probs).resolve(self.index.num_classes, self.size)[1]  # checked
                probs = probs.reshape(-1, self.size, self.size)
            probs = moved_probs(probs, photo_probs(self.index, liked), photo_probs(self.index, unliked))
        q = self._layout_query(probs, lab)
        if weights is not None:
            w = check_weights(weights, self.classes)
            if w and q is None:
                raise ValueError("weights= emphasise classes of a photo or a sketch: give one, or like= some photos")
            q = q if q is None else q.emphasized(w)
        return q

    @staticmethod
    def _layout_query(probs, lab) -> Query | None:
        if probs is None:
            if lab is None:
                return None
            if (lab < 0).all():
                raise ValueError(
                    "the sketch is empty (nothing drawn); draw at least one class, or give a photo or text"
                )
            return Query.sketch(lab)
        if lab is None or (lab < 0).all():
            return Query.image(probs)
        return Query.image_and_sketch(probs, lab)

    # ------------------------------------------------------------------ search
    def search(
        self,
        *,
        image=None,
        maps=None,
        sketch=None,
        text: str | None = None,
        k: int = 10,
        threads: int | None = None,
        rerank: int | None = None,
        after=None,
        before=None,
        folder: str | None = None,
        camera: str | None = None,
        exclude=None,
        explain: bool = False,
        weights=None,
        like=None,
        unlike=None,
    ) -> list[Hit]:
        """Rank the photos; see the module docstring for how text and layout combine.

        ``image``: query photo (path, PIL image or array), segmented by the network; ``maps``: its softmax
        maps (C, n, n) instead. ``sketch``: label map (-1 = unspecified) or sketch PNG; with a photo, the
        drawn pixels override the photo's maps. ``text``: caption words. Returns at most ``k`` hits, best first.
        ``rerank``: the candidates re-ranked by their exact maps (default: the index's; 0: none; see
        :meth:`~segsearch.engine.search.Searchable.search`).

        Filters (see :mod:`segsearch.library.filters`) restrict every kind of search to the photos taken at or
        after ``after`` and before ``before`` (dates, datetimes or ISO strings), in the folder ``folder`` of the
        photos folder or its subfolders, with ``camera`` in their camera model (ignoring case); they need the
        folder's ``photos.sqlite`` (:meth:`filter_mask`).

        ``exclude``: leave out the photos where a class covers at least a share of the photo: a list of class names
        (or numbers), each with a share of 1%, or a dict {class: share}, shares in (0, 1], e.g. ``{"car": 0.01}``
        (see :meth:`exclude_mask`). Like the filters it restricts the search itself, whatever the query.

        ``explain=True``: each hit with a distance carries :attr:`Hit.explain`, its distance split by class.

        ``weights``: emphasise classes, a dict {class: weight > 0} (names or numbers), or a list of classes, each
        with :data:`~segsearch.engine.emphasis.DEFAULT_WEIGHT`, e.g. ``{"bus": 6.0}``: photos that show the class
        where the query has it rank first (see :mod:`segsearch.engine.emphasis`; the query photo or sketch must
        show it). With re-ranking the emphasis is computed from the exact maps, so a search on Ray takes it only
        with ``rerank=0``.

        ``like`` / ``unlike``: lists of ids of indexed photos: the query moves toward the liked photos' maps and away
        from the unliked ones' (read from the index, nothing is segmented; :mod:`segsearch.engine.feedback`). It
        combines with a photo, a sketch (drawn pixels still override), text and every filter; ``like`` alone is a
        query of its own, ``unlike`` needs a photo or ``like``. The liked photos are not left out of the results.
        """
        k = check_k(k)
        if not isinstance(explain, bool):
            raise ValueError(f"explain must be True or False; got {explain!r}")
        keep = self.filter_mask(after=after, before=before, folder=folder, camera=camera)
        if exclude is not None:
            kept = self._exclusion(exclude)[1]
            keep = kept if keep is None else keep & kept
        q = self.query(image=image, maps=maps, sketch=sketch, like=like, unlike=unlike, weights=weights)
        hits = self._rank(q, text, k, threads, rerank, keep)
        if explain and q is not None:
            hits = self._explained(hits, q, rerank)
        return hits

    def _rank(self, q: Query | None, text, k: int, threads, rerank, keep) -> list[Hit]:
        """The hits of :meth:`search` for the query ``q`` (None: text alone) among the photos of ``keep`` (a bool
        mask; None: all)."""
        if text is not None and not isinstance(text, str):
            raise ValueError(f"text must be a string of caption words; got {type(text).__name__}")
        has_text = text is not None and text.strip() != ""
        if has_text:
            if self.captions is None:
                raise ValueError(
                    "this index has no captions, so it cannot be searched by text; index the photos "
                    "with '--captions FILE' or leave the text out"
                )
            if not query_words(text):
                raise ValueError(f"the text {text!r} has no words to search for")
        if q is None and not has_text:
            raise ValueError("nothing to search for: give a photo, a sketch (draw at least one class) or text")
        if not has_text:
            return self._hits(self.index.search(q, k, subset=keep, threads=threads, rerank=rerank))
        levels = self.captions.levels(text)
        if q is None:  # text alone: bm25, best first; ties by position in the index
            scores = self.captions.bm25(text)
            where = self.index.position_map(list(scores))
            if keep is not None:
                scores = {p: s for p, s in scores.items() if p in where and keep[where[p]]}
            order = sorted(scores.items(), key=lambda t: (-t[1], where.get(t[0], len(self))))[:k]
            return [self._hit(i + 1, p, math.nan, levels.get(p, 0), s) for i, (p, s) in enumerate(order)]
        return self._text_and_layout(q, levels, k, threads, rerank, keep)

    def filter_mask(self, *, after=None, before=None, folder=None, camera=None) -> np.ndarray | None:
        """bool (len(self),): the photos that pass the filters (see :meth:`search`), in index order; None when no
        filter is given. A ValueError for a bad filter, or for a folder without ``photos.sqlite`` (saying how to
        make it). The folder's metadata is read on the first call."""
        f = make_filter(after=after, before=before, folder=folder, camera=camera)
        if f is None:
            return None
        with self._lock:
            if self._columns is None:
                self._columns = self._read_columns()
        return self._columns.mask(f)

    def exclude_mask(self, exclude) -> np.ndarray:
        """bool (len(self),): the photos that ``exclude`` (see :meth:`search`) leaves out, in index order: those
        where a class covers at least its share of the photo, counting the pixels whose most likely class it is
        (:mod:`segsearch.engine.class_shares`). An index that stores no class shares (built with ``--no-exact``,
        or before they were stored: :attr:`has_class_shares`) judges them from the codes, more coarsely. A
        ValueError names an unknown class (with close matches) or a share outside (0, 1]. The last few masks are
        kept."""
        return self._exclusion(exclude)[0]

    def _exclusion(self, exclude) -> tuple[np.ndarray, np.ndarray]:
        """(:meth:`exclude_mask`, its negation: the photos a search with ``exclude`` scans), both read-only."""
        rules = tuple(check_exclude(exclude, self.classes))
        if not rules:
            none = np.zeros(len(self), bool)
            return none, ~none
        if not hasattr(self.index, "excluded"):
            raise ValueError("leaving classes out is not available when searching on Ray; search without --ray")
        key = (rules, len(self.index))
        with self._lock:
            if key in self._exclude_masks:
                self._exclude_masks.move_to_end(key)
                return self._exclude_masks[key]
        mask = self.index.excluded(list(rules))
        kept = ~mask
        mask.flags.writeable = kept.flags.writeable = False
        with self._lock:
            self._exclude_masks[key] = mask, kept
            while len(self._exclude_masks) > EXCLUDE_CACHE:
                self._exclude_masks.popitem(last=False)
        return mask, kept

    @property
    def has_class_shares(self) -> bool:
        """Whether the index stores every photo's class shares (else ``exclude`` judges them from the codes)."""
        return bool(getattr(self.index, "has_class_shares", False))

    def _explained(self, hits: list[Hit], q: Query, rerank) -> list[Hit]:
        """``hits`` with :attr:`Hit.explain` set for those with a distance, split as the search computed it: from the
        exact maps when it re-ranked (``rerank``, default the index's, > 0), else from the codes."""
        with_distance = [h for h in hits if not math.isnan(h.distance)]
        if not with_distance:
            return hits
        depth = self.index.rerank if rerank is None else rerank
        if depth and not hasattr(self.index, "exact_photo"):
            raise ValueError("explaining re-ranked results is not available when searching on Ray; pass --rerank 0")
        pos = self.index.positions([h.id for h in with_distance])
        parts = explain_parts(self.index, q, pos, exact=bool(depth))
        by_id = {}
        for h, (classes, values) in zip(with_distance, parts):
            order = np.lexsort((classes, -values))
            by_id[h.id] = tuple(
                ClassPart(int(classes[i]), self.classes[int(classes[i])], float(values[i]))
                for i in order.tolist()
                if values[i] != 0.0
            )
        return [replace(h, explain=by_id[h.id]) if h.id in by_id else h for h in hits]

    def _read_columns(self) -> MetadataColumns:
        path = None if self.index_dir is None else self.index_dir / METADATA_FILE
        if path is None or not path.is_file():
            where = "this index" if self.index_dir is None else str(self.index_dir)
            raise ValueError(
                f"{where} has no photo metadata ({METADATA_FILE}), so it cannot filter by date, folder or camera; "
                f"to add it, {FILL_HINT}"
            )
        return MetadataColumns(read_metadata(path), self.index.ids.tolist())

    def _hits(self, res, start: int = 0, score: int | None = None) -> list[Hit]:
        """Hits for an index search result, ranked from ``start + 1``."""
        return [
            self._hit(start + i + 1, id_, float(d), score)
            for i, (id_, d) in enumerate(zip(res.ids.tolist(), res.distances.tolist()))
        ]

    def _text_and_layout(self, q: Query, levels: dict[str, int], k: int, threads, rerank, keep=None) -> list[Hit]:
        """Sort by text level (:meth:`Captions.levels`; photos not in ``levels`` have level 0), ties by distance,
        then by position in the index: one restricted search per level, best level first; ``keep``: the bool mask
        of the photos the filters let through (None: all)."""
        by_level: dict[int, list[str]] = {}
        held = self.index.position_map(list(levels))
        for p, s in levels.items():
            if p in held and (keep is None or keep[held[p]]):
                by_level.setdefault(s, []).append(p)
        hits: list[Hit] = []
        for s in sorted(by_level, reverse=True):
            res = self.index.search(q, k - len(hits), subset=by_level[s], threads=threads, rerank=rerank)
            hits += self._hits(res, len(hits), s)
            if len(hits) >= k:
                return hits
        rest = np.ones(len(self), bool) if keep is None else keep.copy()
        rest[list(held.values())] = False
        if rest.any():
            res = self.index.search(q, k - len(hits), subset=rest, threads=threads, rerank=rerank)
            hits += self._hits(res, len(hits), 0)
        return hits

    # ------------------------------------------------------------------ decoded codes
    def predicted_labels(self, id) -> np.ndarray:
        """The indexed photo's label map int32 (n, n): argmax over classes of its PQ-decoded maps."""
        codes = codes_at(self.index, self.index.positions([id]))  # (1, C)
        return np.argmax(self.index.decode(codes)[0], axis=0).astype(np.int32)


def _open_captions(path: Path) -> Captions:
    """The folder's captions, opened read-only; a file whose tables are not what segsearch writes (it comes with
    the folder, so from whoever made it) is a ValueError saying so, here rather than at the first text search."""
    import sqlite3

    caps = None
    try:
        caps = Captions(path)
        caps.of("")  # every query a search runs, on a word that need not be there
        caps.bm25("segsearch")
        caps.levels("segsearch")
    except sqlite3.Error as e:
        if caps is not None:
            caps.close()
        raise ValueError(
            f"{path} is damaged or not a segsearch captions file ({e}); delete it, or index the "
            "photos again with --captions FILE"
        ) from None
    return caps


def _photos_root(given, recorded) -> tuple[Path | None, str | None]:
    """(the photos folder resolved, None), or (None, why there is none) for a folder not to be trusted.

    ``given`` (``photos_dir=``) is the caller's choice and trusted. ``recorded`` comes from the index file,
    i.e. from whoever made the folder: used, as the confinement root, only if it is an absolute path that is
    neither a file system root nor a folder holding the home folder (from such a root an id could name any
    of your photos)."""
    if given is not None:
        return Path(given).expanduser().resolve(), None
    fix = "open the index with PhotoIndex.open(..., photos_dir=PHOTOS_DIR)"
    if recorded is None:
        return None, f"the index records no photos folder; {fix}"
    if not isinstance(recorded, str) or "\0" in recorded or not os.path.isabs(recorded):
        return None, f"the index's photos folder {recorded!r} is not an absolute path; {fix}"
    root = Path(recorded).resolve()
    try:
        home = Path.home().resolve()
    except (RuntimeError, KeyError, OSError):
        home = None
    if root == Path(root.anchor) or (home is not None and root in home.parents):
        return None, f"the index's photos folder {recorded} is too wide to trust (it holds your home folder); {fix}"
    return root, None


def open_index(index_dir, **kwargs) -> PhotoIndex:
    """:meth:`PhotoIndex.open`."""
    return PhotoIndex.open(index_dir, **kwargs)
