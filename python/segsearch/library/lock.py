"""The lock a writer of an index folder holds: one ``segsearch index`` (or ``--add``, or ``compact``) at a time.

The lock is an ``flock`` on the folder's ``work/`` directory, released when the process ends, even by kill -9.
Its descriptor is closed in forked children (decoder workers), so a killed run's lock ends with it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..engine.layout import WORK_DIR

__all__ = ["lock_folder", "unlock_folder", "folder_lock"]

#: Descriptors of the locks this process holds; closed in forked children (decoder workers) so that a killed
#: run's lock ends with it, not with its last decoder.
_LOCK_FDS: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in list(_LOCK_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    _LOCK_FDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)


def lock_folder(work: Path, out: Path) -> int:
    """An exclusive lock on ``work/`` (of the index folder ``out``) for this process: two runs writing one folder
    would overwrite each other's files. Returns the descriptor; release it with :func:`unlock_folder`. A folder
    another process writes is a ValueError saying so."""
    import fcntl

    fd = os.open(work, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ValueError(
            f"another 'segsearch index' is writing {str(out)!r}; wait for it to finish (or stop it) "
            "and run this command again"
        ) from None
    except OSError:  # a file system without locks: go on unlocked
        pass
    _LOCK_FDS.add(fd)
    return fd


def unlock_folder(fd: int) -> None:
    """Release a lock :func:`lock_folder` took."""
    _LOCK_FDS.discard(fd)
    os.close(fd)


@contextlib.contextmanager
def folder_lock(d: Path):
    """The index folder ``d``'s lock, held for the ``with`` block (``work/`` is made if missing)."""
    (d / WORK_DIR).mkdir(exist_ok=True)
    fd = lock_folder(d / WORK_DIR, d)
    try:
        yield
    finally:
        unlock_folder(fd)
