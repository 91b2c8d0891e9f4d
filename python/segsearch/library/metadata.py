"""An index folder's photo metadata, ``photos.sqlite``: each indexed photo's date, camera and folder, for the date,
folder and camera filters of a search (:mod:`segsearch.library.filters`). Written whole to a temp file renamed
over the old one (:func:`write_metadata`), so a kill leaves the previous file; filled in for the photos it lacks
at the end of every ``segsearch index`` run (``--add`` included) and by ``segsearch metadata``
(:func:`fill_metadata`)::

    photos(path TEXT PRIMARY KEY,   the photo's id: its path relative to the photos folder, '/'-separated
           date TEXT,               'YYYY-MM-DDTHH:MM:SS', a local time without a zone (see below); NULL: unknown
           date_source TEXT,        'exif' (DateTimeOriginal, as the camera's clock said it), 'file' (the file's
                                    modification time in the indexing machine's time zone) or NULL
           camera TEXT,             EXIF Model, or NULL
           folder TEXT NOT NULL)    the id's folder ('' for the top of the photos folder)
    index photos_date on (date), photos_folder on (folder); PRAGMA user_version = 1

The file comes with the folder, so from whoever made it: one whose tables are not these is refused (a ValueError
saying how to make it again), and a row whose values are not of this form is left out (its photo has no metadata
and is filled in again by the next fill).
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .exif import read_facts

__all__ = ["FORMAT_VERSION", "MetadataReport", "MetadataRow", "fill_metadata", "folder_of", "read_metadata"]

FORMAT_VERSION = 1
#: What a stored date looks like (datetime.isoformat(timespec="seconds") of a naive datetime).
DATE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
SOURCES = ("exif", "file")
#: How the fix for a missing or damaged file is said.
FILL_HINT = "run 'segsearch metadata INDEX_DIR' (or 'segsearch index PHOTOS_DIR --out INDEX_DIR --add')"

_SCHEMA = """
CREATE TABLE photos (
    path TEXT PRIMARY KEY NOT NULL,
    date TEXT,
    date_source TEXT,
    camera TEXT,
    folder TEXT NOT NULL
);
CREATE INDEX photos_date ON photos (date);
CREATE INDEX photos_folder ON photos (folder);
"""


@dataclass(frozen=True)
class MetadataRow:
    """One photo's row of ``photos.sqlite`` (see the module docstring)."""

    path: str
    date: str | None
    date_source: str | None
    camera: str | None
    folder: str


@dataclass
class MetadataReport:
    """What :func:`fill_metadata` did: the photos it added, how many dates came from EXIF and from the file time,
    how many added photos have no date, and the photos whose EXIF (or file) was skipped in part or whole, with
    why (a photo whose file could not be read gets no row: the next fill tries again)."""

    n_added: int = 0
    n_exif: int = 0
    n_file: int = 0
    n_undated: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def folder_of(path: str) -> str:
    """The folder of a photo id (``"2024/trip/a.jpg"`` -> ``"2024/trip"``; ``""`` at the top)."""
    return path.rpartition("/")[0]


def _is_date(value) -> bool:
    """Whether ``value`` is a stored date: 'YYYY-MM-DDTHH:MM:SS' and a real date and time."""
    if not isinstance(value, str) or DATE_FORMAT.fullmatch(value) is None:
        return False
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _valid(row: tuple) -> bool:
    """Whether a stored row has the form :class:`MetadataRow` describes."""
    path, date, source, camera, folder = row
    return (
        isinstance(path, str)
        and (date is None or _is_date(date))
        and (source is None or source in SOURCES)
        and (camera is None or isinstance(camera, str))
        and folder == folder_of(path)
    )


def read_metadata(path: Path) -> dict[str, MetadataRow]:
    """The rows of ``photos.sqlite`` by photo id (rows not of the documented form left out); a ValueError for a
    file that is not one (damaged, or other tables)."""
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise ValueError(f"{path} cannot be opened ({e}); {FILL_HINT}") from None
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != FORMAT_VERSION:
            raise ValueError(f"{path} is of format {version}, not {FORMAT_VERSION}; delete it and {FILL_HINT}")
        rows = db.execute("SELECT path, date, date_source, camera, folder FROM photos").fetchall()
    except sqlite3.Error as e:
        why = f"{path} is damaged or not a segsearch metadata file ({e})"
        raise ValueError(f"{why}; delete it and {FILL_HINT}") from None
    finally:
        db.close()
    return {r[0]: MetadataRow(*r) for r in rows if _valid(r)}


def write_metadata(rows: Iterable[MetadataRow], path: Path) -> int:
    """Write ``rows`` as ``path`` (replacing it whole, atomically: a temp file renamed over it); returns how many."""
    from ..engine.storage import atomic_path

    rows = list(rows)
    with atomic_path(path) as tmp:
        db = sqlite3.connect(str(tmp))
        try:
            with db:
                db.executescript(_SCHEMA)
                db.executemany(
                    "INSERT INTO photos VALUES (?, ?, ?, ?, ?)",
                    ((r.path, r.date, r.date_source, r.camera, r.folder) for r in rows),
                )
                db.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
        except BaseException:
            Path(str(tmp) + "-journal").unlink(missing_ok=True)
            raise
        finally:
            db.close()
    return len(rows)


def _row(id_: str, locate: Callable[[str], tuple[Path | None, str | None]], report: MetadataReport):
    """The row of photo ``id_``, read from the file ``locate`` gives; None (noted in ``report``) for an id refused
    or a file that is not there: a later fill tries again."""
    path, why = locate(id_)
    if path is None or not path.is_file():
        report.skipped.append((id_, f"not read: {why or 'no such file'}"))
        return None
    facts = read_facts(path)
    if facts.skipped:
        report.skipped.append((id_, facts.skipped))
    if facts.source == "exif":
        report.n_exif += 1
    elif facts.source == "file":
        report.n_file += 1
    else:
        report.n_undated += 1
    date = None if facts.date is None else facts.date.isoformat(timespec="seconds")
    return MetadataRow(id_, date, facts.source, facts.camera, folder_of(id_))


def fill_metadata(
    db_path: Path,
    ids: Iterable[str],
    locate: Callable[[str], tuple[Path | None, str | None]],
    log: Callable[[str], None] = print,
) -> MetadataReport:
    """Add the rows ``db_path`` lacks for the photos ``ids`` (strings; others are left out), reading each photo at
    ``locate(id)`` -> (path, None) or (None, why it is refused); the file is rewritten only when a row was added.
    A damaged file is noted in ``log`` and made again. Never raises for a bad photo or bad EXIF: those are counted
    in the report."""
    db_path = Path(db_path)
    have: dict[str, MetadataRow] = {}
    if db_path.is_file():
        try:
            have = read_metadata(db_path)
        except ValueError as e:
            log(f"note: {e.args[0].split(';')[0]}; making it again")
    report = MetadataReport()
    new = [_row(i, locate, report) for i in dict.fromkeys(ids) if isinstance(i, str) and i not in have]
    new = [r for r in new if r is not None]
    if new:
        write_metadata([*have.values(), *new], db_path)
    report.n_added = len(new)
    _note_skipped(report, log)
    return report


#: How many photos a note about skipped EXIF names.
SHOW_SKIPPED = 3


def _note_skipped(report: MetadataReport, log: Callable[[str], None]) -> None:
    n = len(report.skipped)
    if n:
        named = ", ".join(f"{p} ({why})" for p, why in report.skipped[:SHOW_SKIPPED])
        log(
            f"note: {n} photo{'s' if n != 1 else ''}: EXIF or file skipped as unreadable or malformed (the file "
            f"time is the date where the EXIF date was unusable): {named}{', ...' if n > SHOW_SKIPPED else ''}"
        )
