"""A search's metadata filters (``after``, ``before``, ``folder``, ``camera``) checked (:func:`make_filter`) and
turned into a boolean mask over the index's photos (:class:`MetadataColumns`), which the search takes as its
subset: only the photos that pass are scanned, so a filtered search costs no more than an unfiltered one.

* ``after=DATE``: taken at or after DATE (inclusive); ``before=DATE``: taken before DATE (exclusive). A DATE is
  a :class:`datetime.date`, a naive :class:`datetime.datetime` or an ISO string (``"2024-05-01"``,
  ``"2024-05-01T12:00"``); a date alone is its midnight, so ``after="2024-05-01", before="2024-05-02"`` is that
  day. Dates are compared as the local times photos record (see :mod:`segsearch.library.metadata`); a photo
  with no date never passes a date filter.
* ``folder=SUB``: photos in the folder SUB of the photos folder or in its subfolders (``"2024"`` holds
  ``2024/a.jpg`` and ``2024/trip/b.jpg``, not ``2024-old/c.jpg``); SUB is relative, '/'-separated, without
  ``..``.
* ``camera=TEXT``: photos whose camera model holds TEXT, ignoring case.

A photo without a metadata row passes no filter. A filter no photo passes gives no results.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from .metadata import MetadataRow

__all__ = ["MetadataColumns", "PhotoFilter", "make_filter"]

MAX_FILTER_TEXT = 1024


@dataclass(frozen=True)
class PhotoFilter:
    """Checked filters (None: not filtered on): datetimes, a normalised folder, a case-folded camera text."""

    after: dt.datetime | None = None
    before: dt.datetime | None = None
    folder: str | None = None
    camera: str | None = None


def _date(name: str, value) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise OptionError(
                name, f"{name} must be a date like 2024-05-01 or 2024-05-01T12:00; got {value[:40]!r}"
            ) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise OptionError(name, f"{name}: give a local time without a time zone (photos record none)")
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    raise OptionError(name, f"{name} must be a date, a datetime or an ISO date string; got {type(value).__name__}")


def _text(name: str, value) -> str:
    if not isinstance(value, str) or "\0" in value or len(value) > MAX_FILTER_TEXT:
        raise OptionError(name, f"{name} must be a string of at most {MAX_FILTER_TEXT} characters, without NUL")
    return value


def _folder(value) -> str | None:
    """The folder as stored ('/'-separated, no empty or '.' parts); '' is the whole photos folder."""
    if value is None:
        return None
    text = _text("folder", value)
    if text.startswith("/"):
        raise OptionError("folder", f"folder must be relative to the photos folder (e.g. 2024/trip); got {text!r}")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OptionError("folder", f"folder must be a folder inside the photos folder, without '..'; got {text!r}")
    return "/".join(parts)


def make_filter(*, after=None, before=None, folder=None, camera=None) -> PhotoFilter | None:
    """The checked filters, or None when none is given; :class:`~segsearch.errors.OptionError` (a ValueError)
    naming the bad one."""
    if after is None and before is None and folder is None and camera is None:
        return None
    cam = None
    if camera is not None:
        cam = _text("camera", camera).strip().casefold()
        if not cam:
            raise OptionError("camera", "camera must hold some text to look for in the camera model")
    return PhotoFilter(_date("after", after), _date("before", before), _folder(folder), cam)


class MetadataColumns:
    """The metadata of an index's photos, kept so that a filter costs in proportion to the photos it lets through:
    the positions sorted by date (a date range is a slice of them) and the positions of each distinct folder and
    camera. The last :data:`MASKS_KEPT` masks are kept, so searching again with the same filters costs nothing."""

    def __init__(self, rows: dict[str, MetadataRow], ids: list):
        self.n = len(ids)
        folder_at: dict[str, int] = {}
        camera_at: dict[str, int] = {}
        dates: list[str | None] = [None] * self.n
        folder_codes = np.full(self.n, -1, np.int64)
        camera_codes = np.full(self.n, -1, np.int64)
        for i, id_ in enumerate(ids):
            r = rows.get(id_) if isinstance(id_, str) else None
            if r is None:
                continue
            dates[i] = r.date
            folder_codes[i] = folder_at.setdefault(r.folder, len(folder_at))
            if r.camera is not None:
                camera_codes[i] = camera_at.setdefault(r.camera, len(camera_at))
        when = np.array(dates, "datetime64[s]")  # None: NaT, sorted last
        self._by_date = np.argsort(when, kind="stable")
        self._dates = when[self._by_date]
        self._n_dated = int((~np.isnat(when)).sum())
        self.folders, self._folder_pos = list(folder_at), _positions_by_code(folder_codes, len(folder_at))
        self.cameras, self._camera_pos = list(camera_at), _positions_by_code(camera_codes, len(camera_at))
        self._masks: OrderedDict[PhotoFilter, np.ndarray] = OrderedDict()

    def mask(self, f: PhotoFilter) -> np.ndarray:
        """bool (n,), read-only: the photos that pass ``f``."""
        m = self._masks.get(f)
        if m is None:
            m = self._mask(f)
            m.flags.writeable = False
            self._masks[f] = m
            while len(self._masks) > MASKS_KEPT:
                self._masks.popitem(last=False)
        self._masks.move_to_end(f)
        return m

    def _mask(self, f: PhotoFilter) -> np.ndarray:
        parts = []
        if f.after is not None or f.before is not None:
            lo = 0 if f.after is None else np.searchsorted(self._dates[: self._n_dated], np.datetime64(f.after), "left")
            hi = self._n_dated
            if f.before is not None:
                hi = np.searchsorted(self._dates[: self._n_dated], np.datetime64(f.before), "left")
            parts.append(self._by_date[lo : max(lo, hi)])
        if f.folder is not None:
            sub = f.folder
            ok = [not sub or x == sub or x.startswith(sub + "/") for x in self.folders]
            parts.append(_union(self._folder_pos, ok))
        if f.camera is not None:
            parts.append(_union(self._camera_pos, [f.camera in c.casefold() for c in self.cameras]))
        parts.sort(key=len)  # the fewest photos first
        m = np.zeros(self.n, bool)
        m[parts[0]] = True
        for p in parts[1:]:
            keep = np.zeros(self.n, bool)
            keep[p] = True
            m &= keep
        return m


#: How many filters' masks :class:`MetadataColumns` keeps.
MASKS_KEPT = 8


def _positions_by_code(codes: np.ndarray, n_codes: int) -> list[np.ndarray]:
    """For each code 0..n_codes-1, the positions that hold it (code -1: none)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_codes + 1))
    return [order[bounds[c] : bounds[c + 1]] for c in range(n_codes)]


def _union(positions: list[np.ndarray], ok: list[bool]) -> np.ndarray:
    """The positions of the codes that are ``ok``."""
    chosen = [p for p, good in zip(positions, ok) if good]
    return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
