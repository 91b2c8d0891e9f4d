"""What a photo file says about itself: when it was taken and with which camera, from its EXIF (untrusted input)
or else from the file's modification time.

A photo's EXIF is read from the header Pillow reads when it opens the file (the pixels are not decoded): JPEG's
APP1 segment, WebP's EXIF chunk, PNG's ``eXIf`` chunk when it comes before the image data. The fields used:

* ``DateTimeOriginal`` (tag 36867 in the Exif IFD): ``"YYYY:MM:DD HH:MM:SS"``, a local time without a zone as
  the camera's clock said it; parsed strictly (:func:`parse_exif_date`), years :data:`MIN_YEAR`..:data:`MAX_YEAR`;
* ``Model`` (tag 272 in IFD0): the camera model, at most :data:`MAX_TEXT` characters.

EXIF comes from whoever made the file: a block that cannot be parsed, a date that is not a real date (``"0000:00:00
00:00:00"``, ``"2024:13:45 99:99:99"``), a value of the wrong type or a string longer than :data:`MAX_TEXT` is
skipped and noted (:attr:`PhotoFacts.skipped`), never raised. Without a usable EXIF date the photo's date is the
file's modification time in this machine's time zone (also a local time without a zone).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MAX_EXIF_BYTES", "MAX_TEXT", "MAX_YEAR", "MIN_YEAR", "PhotoFacts", "parse_exif_date", "read_facts"]

#: Dates outside these years are not believed (a camera whose clock was never set, a corrupt field).
MIN_YEAR, MAX_YEAR = 1800, 2200
#: The longest camera model kept; a longer one is skipped as malformed.
MAX_TEXT = 256
#: The largest EXIF block parsed (JPEG's cannot exceed 64 kB; a larger PNG or WebP one is skipped).
MAX_EXIF_BYTES = 1 << 20
EXIF_IFD, DATE_TIME_ORIGINAL, MODEL = 0x8769, 36867, 272
_EXIF_DATE = re.compile(r"(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})")


@dataclass(frozen=True)
class PhotoFacts:
    """A photo's date (a naive :class:`datetime.datetime`, or None when even the file time is unusable), where the
    date came from (``"exif"``, ``"file"`` or None), its camera model (or None) and what was skipped as malformed
    (an empty string when nothing was)."""

    date: dt.datetime | None
    source: str | None
    camera: str | None
    skipped: str = ""


def parse_exif_date(value) -> dt.datetime | None:
    """The datetime of an EXIF date string ``"YYYY:MM:DD HH:MM:SS"`` (trailing NULs and spaces allowed), or None
    for anything else: another type, another layout, an impossible date or time, a year outside
    :data:`MIN_YEAR`..:data:`MAX_YEAR`."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    m = _EXIF_DATE.fullmatch(value.rstrip("\0 "))
    if m is None:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups())
    if not MIN_YEAR <= y <= MAX_YEAR:
        return None
    try:
        return dt.datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None


def _camera(value) -> tuple[str | None, bool]:
    """(the camera model, cleaned, or None; whether it was malformed: not a string, or too long)."""
    if value is None:
        return None, False
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        return None, True
    text = " ".join("".join(ch for ch in value if ch.isprintable()).split())
    return text or None, False


def _exif_fields(path: Path) -> tuple[object, object]:
    """(DateTimeOriginal, Model) as Pillow reads them from the file's header, None where absent. Raises whatever
    Pillow raises for a file or EXIF block it cannot read, ValueError for a block over :data:`MAX_EXIF_BYTES`."""
    from PIL import Image

    with Image.open(path) as im:  # reads the header only
        raw = im.info.get("exif")
    if raw is None:
        return None, None
    if not isinstance(raw, (bytes, bytearray)) or len(raw) > MAX_EXIF_BYTES:
        raise ValueError(f"an EXIF block of {len(raw) if isinstance(raw, (bytes, bytearray)) else '?'} bytes")
    exif = Image.Exif()
    exif.load(bytes(raw))
    return exif.get_ifd(EXIF_IFD).get(DATE_TIME_ORIGINAL), exif.get(MODEL)


def _file_time(path: Path) -> dt.datetime | None:
    """The file's modification time in local time, to the second; None where it cannot be had or is absurd."""
    try:
        t = dt.datetime.fromtimestamp(int(os.stat(path).st_mtime))
    except (OSError, OverflowError, ValueError):
        return None
    return t if MIN_YEAR <= t.year <= MAX_YEAR else None


def read_facts(path: Path) -> PhotoFacts:
    """The date, its source and the camera of the photo at ``path`` (see the module docstring); never raises for
    a bad file or bad EXIF: what could not be used is named in :attr:`PhotoFacts.skipped`."""
    skipped = []
    try:
        with warnings.catch_warnings(record=True) as caught:  # Pillow warns of corrupt blocks it reads past
            warnings.simplefilter("always")
            raw_date, raw_model = _exif_fields(path)
        if caught:
            skipped.append("EXIF partly unreadable")
    except Exception as e:  # untrusted bytes: any parser error means "no usable EXIF"
        raw_date, raw_model = None, None
        skipped.append(f"EXIF unreadable ({type(e).__name__})")
    date = parse_exif_date(raw_date)
    if date is None and raw_date is not None:
        skipped.append("EXIF date malformed")
    camera, bad_camera = _camera(raw_model)
    if bad_camera:
        skipped.append("EXIF camera model malformed")
    source = "exif" if date is not None else None
    if date is None:
        date = _file_time(path)
        source = None if date is None else "file"
    return PhotoFacts(date, source, camera, "; ".join(skipped))
