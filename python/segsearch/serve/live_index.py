"""The index folder a server answers from, picked up again when ``segsearch index --add`` (or ``compact``,
``metadata``) changes it: a watcher thread looks at the folder's files every few seconds and, when one changed,
opens the folder anew and swaps it in whole. A request takes :attr:`LiveIndex.current` once and answers from
it, so it never sees half of an update; a folder caught mid-write that does not open is tried again at the next
look, the old state served meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..engine.layout import CAPTIONS_FILE, INDEX_FILE, MANIFEST_FILE, METADATA_FILE
from ..library.photo_index import PhotoIndex

__all__ = ["LiveIndex"]

log = logging.getLogger("segsearch.serve")

#: The files whose change means the folder holds something new.
WATCHED = (INDEX_FILE, MANIFEST_FILE, CAPTIONS_FILE, METADATA_FILE)
#: How long a replaced state is kept before it is closed (its Ray actors stopped): requests that took it finish.
RETIRE_SECONDS = 120.0


class LiveIndex:
    """The current :class:`PhotoIndex` of ``index_dir`` (``open_index()`` opens it), reopened when it changes.

    ``generation`` counts the reopenings. The network, once loaded for photo queries, is handed to each new
    state rather than loaded again."""

    def __init__(self, index_dir, open_index: Callable[[], PhotoIndex], *, reload_seconds: float = 2.0):
        self.index_dir = Path(index_dir)
        self._open = open_index
        self._stamp = self._files_stamp()
        self.current: PhotoIndex = open_index()
        self.generation = 0
        self.reload_seconds = float(reload_seconds)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self._retired: list[tuple[float, PhotoIndex]] = []  # (when replaced, state): closed RETIRE_SECONDS later

    def _files_stamp(self) -> tuple:
        out = []
        for name in WATCHED:
            try:
                st = os.stat(self.index_dir / name)
                out.append((name, st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((name, None))
        return tuple(out)

    def check(self) -> bool:
        """Reopen the folder if its files changed since the last opening; True if a new state was swapped in."""
        with self._lock:
            stamp = self._files_stamp()  # before opening: a change during the opening is seen at the next look
            if stamp == self._stamp:
                return False
            old = self.current
            try:
                new = self._open()
            except Exception as e:  # mid-write, or damaged: keep answering from what we have, look again later
                msg = " ".join(str(e).split())
                if msg != self.last_error:
                    log.warning("the index folder changed but does not open (%s); serving its previous state", msg)
                self.last_error = msg
                return False
            if old._segmenter is not None and new._segmenter is None:
                new._segmenter = old._segmenter
            self.current, self._stamp, self.last_error = new, stamp, None
            self._retired.append((time.monotonic(), old))
            self.generation += 1
            log.info("picked up the index folder's new state: %d photos (generation %d)", len(new), self.generation)
            return True

    def close_retired(self, *, older_than: float = RETIRE_SECONDS) -> int:
        """Close the replaced states retired at least ``older_than`` seconds ago (a state on Ray stops its actors);
        returns how many were closed."""
        now, keep, done = time.monotonic(), [], []
        with self._lock:
            for when, pi in self._retired:
                if now - when >= older_than:
                    done.append(pi)
                else:
                    keep.append((when, pi))
            self._retired = keep
        for pi in done:
            _close(pi)
        return len(done)

    def start(self) -> None:
        """Start the watcher thread (a daemon; :meth:`stop` ends it)."""
        if self._thread is None and self.reload_seconds > 0:
            self._thread = threading.Thread(target=self._watch, name="segsearch-index-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop watching and close every state, the current one too (the server is going away)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.close_retired(older_than=0)
        _close(self.current)

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            try:
                self.check()
                self.close_retired()
            except Exception:  # never let the watcher die: log and look again
                log.exception("watching the index folder failed")


def _close(pi: PhotoIndex) -> None:
    """Release what a state holds beyond memory: Ray actors, the captions' connection (a local folder's maps are
    unmapped when dropped)."""
    for close in (getattr(pi.index, "close", None), getattr(pi.captions, "close", None)):
        if callable(close):
            try:
                close()
            except Exception:
                log.exception("closing a replaced state of the index folder failed")
