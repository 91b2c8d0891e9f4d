"""The sketch tool's search worker: one background thread that segments the query photo, runs the search and
makes the result thumbnails, so the Tk main thread never waits. No Tk here: answers go back through a queue
that the window polls.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from ..sketch.sheet import UNREADABLE, not_shown_tile, open_photo

__all__ = ["SearchAnswer", "SearchRequest", "SearchWorker", "ThumbnailCache"]


@dataclass
class SearchRequest:
    """One search: ``seq`` orders requests (the window shows only the answer to its latest one)."""

    seq: int
    labels: np.ndarray | None  # sketch at the index's n x n, None if nothing is drawn
    photo: str | None  # query photo file
    text: str | None
    k: int
    options: dict = field(default_factory=dict)  # more PhotoIndex.search keywords: filters, exclude, like, ...
    explain: bool = False  # split each hit's distance by class (Hit.explain)

    def search_kwargs(self) -> dict:
        """The keywords the worker gives :meth:`PhotoIndex.search` besides the query photo's ``maps``."""
        out = {"sketch": self.labels, "text": self.text, "k": self.k, **self.options}
        if self.explain:
            out["explain"] = True
        return out


@dataclass
class SearchAnswer:
    """The answer to the request ``seq``: hits and their thumbnails (None where a photo cannot be read; a grey
    "not shown" tile where its id is refused, ``hit.path`` None, see :class:`~segsearch.library.photo_index.Hit`: such a
    photo is never opened), times in ms (``segment_ms`` only when the photo was segmented for this request), or
    ``error``, a message. ``photo_labels``: the query photo's label map (each cell's most likely class, n x n),
    what the network sees in it; None without a query photo."""

    seq: int
    photo_labels: np.ndarray | None = None
    hits: list = field(default_factory=list)
    thumbs: list = field(default_factory=list)
    search_ms: float = 0.0
    segment_ms: float | None = None
    error: str | None = None


class ThumbnailCache:
    """Thumbnails fitting in a ``size`` = (width, height) box (aspect ratio kept), the last ``capacity`` photos
    cached."""

    def __init__(self, size: tuple[int, int], capacity: int = 256):
        self.size = (int(size[0]), int(size[1]))
        self.capacity = int(capacity)
        self._images: dict[str, Image.Image] = {}
        self._not_shown: Image.Image | None = None

    def not_shown(self) -> Image.Image:
        """The grey "not shown" tile of a photo whose id is refused."""
        if self._not_shown is None:
            self._not_shown = not_shown_tile(self.size)
        return self._not_shown

    def get(self, path) -> Image.Image | None:
        """The thumbnail of ``path``, or None when it cannot be read; the "not shown" tile for None (a refused
        id: nothing is opened)."""
        if path is None:
            return self.not_shown()
        key = str(path)
        im = self._images.get(key)
        if im is None:
            try:
                im = ImageOps.contain(open_photo(path, self.size), self.size)
            except UNREADABLE:
                return None
            if len(self._images) >= self.capacity:
                self._images.clear()
            self._images[key] = im
        return im


class SearchWorker:
    """One worker thread over an opened :class:`~segsearch.library.photo_index.PhotoIndex` running the latest request
    (older pending ones are dropped); answers arrive in :attr:`answers`, with thumbnails fitting in
    ``thumb_size`` = (width, height)."""

    def __init__(self, photo_index, thumb_size: tuple[int, int]):
        self.pi = photo_index
        self.answers: queue.Queue = queue.Queue()
        self.thumbnails = ThumbnailCache(thumb_size)
        self._lock = threading.Condition()
        self._request: SearchRequest | None = None
        self._stop = False
        self._last_photo: str | None = None
        self._thread = threading.Thread(target=self._loop, name="segsearch-gui-search", daemon=True)
        self._thread.start()

    def submit(self, req: SearchRequest) -> None:
        """Queue ``req``, replacing any request not started yet."""
        with self._lock:
            self._request = req
            self._lock.notify()

    def stop(self) -> None:
        """Let the thread end (after the search it is running, if any)."""
        with self._lock:
            self._stop = True
            self._lock.notify()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._request is None and not self._stop:
                    self._lock.wait()
                if self._stop:
                    return
                req, self._request = self._request, None
            self.answers.put(self.answer(req))

    def answer(self, req: SearchRequest) -> SearchAnswer:
        """Run ``req`` (in the calling thread); failures become ``error``, never an exception."""
        ans = SearchAnswer(req.seq)
        try:
            maps = None
            if req.photo is not None:  # PhotoIndex.segment caches the maps of recent photos
                t0 = time.perf_counter()
                maps = self.pi.segment(req.photo)
                if req.photo != self._last_photo:
                    ans.segment_ms = (time.perf_counter() - t0) * 1e3
                    self._last_photo = req.photo
                ans.photo_labels = np.asarray(maps).argmax(axis=0).astype(np.int32)
            t0 = time.perf_counter()
            ans.hits = self.pi.search(maps=maps, **req.search_kwargs())
            ans.search_ms = (time.perf_counter() - t0) * 1e3
            ans.thumbs = [self.thumbnails.get(h.path) for h in ans.hits]
        except Exception as e:  # noqa: BLE001 -- any failure is shown in the status bar; the worker keeps running
            ans.error = str(e).strip() or type(e).__name__
        return ans
