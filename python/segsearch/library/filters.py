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
    """The metadata of an index's photos, in index order: dates (datetime64[s], NaT when unknown) and folder and
    camera codes into their distinct values (-1: none), so a filter is a few array operations."""

    def __init__(self, rows: dict[str, MetadataRow], ids: list):
        n = len(ids)
        self.known = np.zeros(n, bool)
        self.folders: list[str] = []
        self.cameras: list[str] = []
        self.folder_codes = np.full(n, -1, np.int32)
        self.camera_codes = np.full(n, -1, np.int32)
        folder_at: dict[str, int] = {}
        camera_at: dict[str, int] = {}
        dates: list[str | None] = [None] * n
        for i, id_ in enumerate(ids):
            r = rows.get(id_) if isinstance(id_, str) else None
            if r is None:
                continue
            self.known[i] = True
            dates[i] = r.date
            self.folder_codes[i] = folder_at.setdefault(r.folder, len(folder_at))
            if r.camera is not None:
                self.camera_codes[i] = camera_at.setdefault(r.camera, len(camera_at))
        self.dates = np.array(dates, "datetime64[s]")  # None: NaT
        self.folders, self.cameras = list(folder_at), list(camera_at)

    def mask(self, f: PhotoFilter) -> np.ndarray:
        """bool (n,): the photos that pass ``f``."""
        m = self.known.copy()
        if f.after is not None:
            m &= self.dates >= np.datetime64(f.after)
        if f.before is not None:
            m &= self.dates < np.datetime64(f.before)
        if f.folder is not None:
            sub = f.folder
            ok = [not sub or x == sub or x.startswith(sub + "/") for x in self.folders]
            m &= _by_code(ok, self.folder_codes)
        if f.camera is not None:
            m &= _by_code([f.camera in c.casefold() for c in self.cameras], self.camera_codes)
        return m


def _by_code(ok: list[bool], codes: np.ndarray) -> np.ndarray:
    """bool per photo: ``ok[code]``, False for code -1."""
    table = np.array([*ok, False], bool)  # code -1 reads the last entry
    return table[codes]
