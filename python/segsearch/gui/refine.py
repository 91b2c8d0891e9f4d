"""The sketch tool's query refinements (no Tk): what a search is narrowed or steered by besides the sketch, the
photo and the caption words -- the date, folder and camera filters, the classes left out, the classes
emphasised, and the results liked and unliked -- as one immutable :class:`Refinement`, which the window keeps in
its undo history (each change is one step) and turns into :meth:`PhotoIndex.search
<segsearch.library.photo_index.PhotoIndex.search>` keyword arguments (:meth:`Refinement.search_kwargs`).

:func:`search_options` says which of them the opened index's search takes (``weights``, ``like`` and ``unlike``
came later than the filters and ``exclude``): the tool offers only those.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace

from ..engine.class_shares import DEFAULT_EXCLUDE_SHARE as DEFAULT_SHARE  # a class left out: 1% of the photo
from ..engine.emphasis import DEFAULT_WEIGHT
from ..engine.layout import METADATA_FILE
from ..library.filters import make_filter

__all__ = [
    "DEFAULT_SHARE",
    "DEFAULT_WEIGHT",
    "FILTERS",
    "SHARES",
    "WEIGHTS",
    "Chip",
    "Refinement",
    "explains",
    "has_metadata",
    "search_options",
]

FILTERS = ("after", "before", "folder", "camera")
SHARES = (0.005, 0.01, 0.03, 0.1, 0.3)  # the shares a chip's menu offers
WEIGHTS = (2.0, 4.0, DEFAULT_WEIGHT, 10.0, 16.0)  # the weights a chip's menu offers (an emphasised class: 6)


def search_options(photo_index) -> frozenset[str]:
    """The refinement keywords ``photo_index.search`` takes, of the filters, ``exclude``, ``explain``,
    ``weights``, ``like`` and ``unlike`` (from its signature: a search raises TypeError for a keyword it lacks)."""
    try:
        params = inspect.signature(photo_index.search).parameters
    except (TypeError, ValueError):
        return frozenset()
    wanted = (*FILTERS, "exclude", "explain", "weights", "like", "unlike")
    return frozenset(name for name in wanted if name in params)


def explains(photo_index) -> bool:
    """Whether ``photo_index`` can split its results' distances by class (``explain=True``): not when its search
    re-ranks on Ray, where the exact maps are in the actors."""
    if "explain" not in search_options(photo_index):
        return False
    index = photo_index.index
    return hasattr(index, "exact_photo") or not getattr(index, "rerank", 0)


def has_metadata(photo_index) -> bool:
    """Whether the index folder has the photo metadata (``photos.sqlite``) the date, folder and camera filters
    need."""
    d = getattr(photo_index, "index_dir", None)
    return d is not None and (d / METADATA_FILE).is_file()


def _percent(share: float) -> str:
    return f"{share * 100:g}%"


def _times(weight: float) -> str:
    return f"×{weight:g}"


@dataclass(frozen=True)
class Chip:
    """One refinement as the tool shows it: ``kind`` (a filter's name, "exclude", "weight", "like" or
    "unlike"), ``key`` (the class for exclude and weight, else None), ``text`` and a ``tooltip``."""

    kind: str
    key: object
    text: str
    tooltip: str


@dataclass(frozen=True)
class Refinement:
    """The refinements of a query. Filters: ``after``/``before`` (ISO dates, as typed), ``folder``, ``camera``
    (None: not filtered). ``exclude``: ((class, share), ...) and ``weights``: ((class, weight), ...), by class
    index, sorted. ``like`` / ``unlike``: result ids, in the order they were marked. Every change returns a new
    Refinement."""

    after: str | None = None
    before: str | None = None
    folder: str | None = None
    camera: str | None = None
    exclude: tuple[tuple[int, float], ...] = ()
    weights: tuple[tuple[int, float], ...] = ()
    like: tuple = ()
    unlike: tuple = ()

    # ------------------------------------------------------------------------------------------ changes
    def with_filters(self, **filters) -> Refinement:
        """The filters set (a value of None or blank text clears one), checked as the search checks them: an
        :class:`~segsearch.errors.OptionError` (one line, naming the filter) for a bad date, folder or camera."""
        unknown = set(filters) - set(FILTERS)
        if unknown:
            raise ValueError(f"unknown filter {sorted(unknown)[0]!r}; expected one of {', '.join(FILTERS)}")
        values = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in filters.items()}
        out = replace(self, **values)
        make_filter(**out.filters())
        return out

    def excluding(self, cls: int, share: float = DEFAULT_SHARE) -> Refinement:
        """Leave out the photos where class ``cls`` covers at least ``share`` of the photo."""
        return replace(self, exclude=_put(self.exclude, int(cls), float(share)))

    def emphasising(self, cls: int, weight: float = DEFAULT_WEIGHT) -> Refinement:
        """Class ``cls`` counts ``weight`` times more."""
        return replace(self, weights=_put(self.weights, int(cls), float(weight)))

    def marking(self, id_, mark: str | None) -> Refinement:
        """Result ``id_`` liked (``mark`` "like"), unliked ("unlike") or neither (None)."""
        if mark not in ("like", "unlike", None):
            raise ValueError(f"mark must be 'like', 'unlike' or None; got {mark!r}")
        like = tuple(i for i in self.like if i != id_) + ((id_,) if mark == "like" else ())
        unlike = tuple(i for i in self.unlike if i != id_) + ((id_,) if mark == "unlike" else ())
        return replace(self, like=like, unlike=unlike)

    def without(self, kind: str, key=None) -> Refinement:
        """The refinement a chip shows removed: a filter, one class left out or emphasised, or all likes or
        unlikes."""
        if kind in FILTERS:
            return replace(self, **{kind: None})
        if kind in ("exclude", "weights"):
            return replace(self, **{kind: tuple(t for t in getattr(self, kind) if t[0] != key)})
        if kind in ("like", "unlike"):
            return replace(self, **{kind: ()})
        raise ValueError(f"unknown refinement {kind!r}")

    # ------------------------------------------------------------------------------------------- reading
    def mark(self, id_) -> str | None:
        """ "like", "unlike" or None for result ``id_``."""
        return "like" if id_ in self.like else "unlike" if id_ in self.unlike else None

    def filters(self) -> dict:
        """The filters that are set, as search keywords."""
        return {k: getattr(self, k) for k in FILTERS if getattr(self, k) is not None}

    def search_kwargs(self, classes) -> dict:
        """The keywords for :meth:`PhotoIndex.search` (only those set): the filters, ``exclude`` {name: share},
        ``weights`` {name: weight}, ``like`` and ``unlike`` (lists of ids); ``classes``: the index's class
        names."""
        out = self.filters()
        if self.exclude:
            out["exclude"] = {classes[c]: s for c, s in self.exclude}
        if self.weights:
            out["weights"] = {classes[c]: w for c, w in self.weights}
        if self.like:
            out["like"] = list(self.like)
        if self.unlike:
            out["unlike"] = list(self.unlike)
        return out

    def chips(self, classes) -> list[Chip]:
        """What the tool shows of the refinement, one :class:`Chip` each."""
        out = [
            Chip(k, None, f"{k} {v}" if k != "folder" else f"in {v}/", f"{k} {v!r}: a click changes the filters")
            for k, v in self.filters().items()
        ]
        for c, s in self.exclude:
            out.append(
                Chip(
                    "exclude",
                    c,
                    f"no {classes[c]} ≥{_percent(s)}",
                    f"photos with {classes[c]} on {_percent(s)} "
                    "of the photo or more are left out; a click changes the share",
                )
            )
        for c, w in self.weights:
            out.append(
                Chip(
                    "weights",
                    c,
                    f"{classes[c]} {_times(w)}",
                    f"{classes[c]} counts {w:g} times; a click changes the weight",
                )
            )
        for kind, ids, verb in (("like", self.like, "more like"), ("unlike", self.unlike, "fewer like")):
            if ids:
                out.append(Chip(kind, None, f"{kind}d {len(ids)}", f"{verb}: " + ", ".join(map(str, ids))))
        return out

    def __bool__(self) -> bool:
        return self != Refinement()


def _put(pairs: tuple, key: int, value: float) -> tuple:
    return tuple(sorted({**dict(pairs), key: value}.items()))
