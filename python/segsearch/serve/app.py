"""The FastAPI app of ``segsearch serve``: the HTTP API of docs/http-api.md and the page at ``/``.

Work is kept off the event loop: searches run in the thread pool (the core releases the GIL), query photos are
segmented by the network in a pool of their own (``photo_workers``), so sketch and text queries keep answering
while photos are segmented. Photos, thumbnails and label maps are looked up by id through the index's photo
confinement (:meth:`~segsearch.library.photo_index.PhotoIndex.locate`), never from a path the client sends.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import mimetypes
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..engine.layout import METADATA_FILE
from ..errors import IndexFormatError, RequestTooLarge
from ..library.photo_index import PhotoIndex
from ..network.palette import colorize
from .live_index import LiveIndex
from .query_fields import (
    SEARCH_FIELDS,
    RequestError,
    SearchFields,
    decode_photo,
    decode_sketch,
    parse_fields,
)

__all__ = ["create_app", "DEFAULT_MAX_UPLOAD_MB", "TOKEN_COOKIE"]

log = logging.getLogger("segsearch.serve")

STATIC_DIR = Path(__file__).with_name("static")
#: The default cap on a request body (an uploaded photo and its query), in MB.
DEFAULT_MAX_UPLOAD_MB = 20
#: The cookie that may carry the token (the page sets it so that ``<img>`` URLs load).
TOKEN_COOKIE = "segsearch_token"
#: Thumbnail sizes a client may ask for, and how many thumbnails are kept in memory.
THUMB_SIZES = (32, 1024)
THUMB_DEFAULT = 320
THUMB_CACHE = 512
#: How many uploaded query photos' maps are kept (keyed by the upload's sha256).
UPLOAD_CACHE = 16

_SEARCH_BODY = {
    "description": "A JSON object of search fields (docs/http-api.md), or multipart/form-data with a part "
    "'image' (the query photo) and an optional part 'query' holding that JSON.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "k": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
                    "draw": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "class": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                                "box": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
                            },
                            "required": ["class", "box"],
                        },
                    },
                    "sketch": {"type": "string", "description": "base64 PNG label map"},
                    "photo": {"type": "string", "description": "id of an indexed photo"},
                    "text": {"type": "string"},
                    "rerank": {"type": "integer", "minimum": 0},
                    "after": {"type": "string"},
                    "before": {"type": "string"},
                    "folder": {"type": "string"},
                    "camera": {"type": "string"},
                    "exclude": {
                        "oneOf": [
                            {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
                            {"type": "object", "additionalProperties": {"type": "number"}},
                        ],
                        "description": "leave out photos where a class covers at least a share (default 0.01)",
                    },
                    "explain": {"type": "boolean", "description": "split each distance by class"},
                    "weights": {
                        "type": "object",
                        "additionalProperties": {"type": "number"},
                        "description": "emphasise classes: {class: how much more it counts}",
                    },
                    "like": {"type": "array", "description": "ids of results to find more like"},
                    "unlike": {"type": "array", "description": "ids of results to find fewer like"},
                },
            }
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "image": {"type": "string", "format": "binary"},
                    "query": {"type": "string", "description": "the JSON search fields"},
                },
                "required": ["image"],
            }
        },
    },
}


class LimitBody:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413 (by its Content-Length before anything
    is read, else as soon as the streamed bytes pass the cap)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await _send_json(send, 413, _too_large(self.max_bytes))
        seen, started = 0, False

        async def limited():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise RequestTooLarge()
            return msg

        async def tracked(msg):
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, limited, tracked)
        except RequestTooLarge:
            if not started:
                await _send_json(send, 413, _too_large(self.max_bytes))


def _too_large(max_bytes: int) -> str:
    return f"the request is larger than the server's cap of {max_bytes / 1e6:g} MB; send a smaller photo"


async def _send_json(send, status: int, message: str) -> None:
    body = JSONResponse({"error": message}, status_code=status).body
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class LruCache:
    """A small thread-safe LRU map."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


class Thumbnails:
    """JPEG thumbnails of photo files, the last :data:`THUMB_CACHE` kept (keyed by file, its size and time)."""

    def __init__(self, capacity: int = THUMB_CACHE):
        self._cache = LruCache(capacity)

    def get(self, path: Path, size: int) -> bytes:
        import io

        from PIL import ImageOps

        from ..sketch.sheet import open_photo

        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns, size)
        data = self._cache.get(key)
        if data is None:
            im = ImageOps.contain(open_photo(path, (size, size)), (size, size))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=85)
            data = buf.getvalue()
            self._cache.put(key, data)
        return data


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def create_app(
    index_dir,
    *,
    token: str | None = None,
    photos_dir=None,
    segmenter=None,
    device=None,
    weights=None,
    ray: str | None = None,
    ray_actors: int | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1_000_000,
    photo_workers: int | None = None,
    search_threads: int = 1,
    reload_seconds: float = 2.0,
    allowed_hosts: list[str] | None = None,
) -> FastAPI:
    """The app serving ``index_dir`` (opened now: a folder that does not open raises here, before any port is
    bound). ``token``: every ``/api`` call must carry it (``Authorization: Bearer`` or the cookie
    :data:`TOKEN_COOKIE`). ``segmenter``, ``device``, ``weights``, ``photos_dir``, ``ray``, ``ray_actors``: as
    :meth:`PhotoIndex.open`. ``max_upload_bytes``: the cap on a request body (413 above). ``photo_workers``:
    threads segmenting query photos (default: half the cores, at least 1). ``search_threads``: threads per search
    (default 1: concurrent requests already use the cores). ``reload_seconds``: how often the folder is looked at
    for new photos (0: never). ``allowed_hosts``: the names the ``Host`` header may carry (None: any); a server on
    loopback without a token allows only loopback names, so a web page elsewhere cannot reach it through a name
    that resolves to this machine (DNS rebinding)."""
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ValueError("the token must be a non-empty string")
    seg_holder = {"seg": segmenter}

    def open_index() -> PhotoIndex:
        return PhotoIndex.open(
            index_dir,
            segmenter=seg_holder["seg"],
            device=device,
            weights=weights,
            photos_dir=photos_dir,
            ray=ray,
            ray_actors=ray_actors,
        )

    live = LiveIndex(index_dir, open_index, reload_seconds=reload_seconds)
    workers = photo_workers if photo_workers is not None else max(1, _usable_cores() // 2)
    state = {"pool": None}
    thumbs = Thumbnails()
    uploads = LruCache(UPLOAD_CACHE)

    @asynccontextmanager
    async def lifespan(app):
        state["pool"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segsearch-photo")
        live.start()
        try:
            yield
        finally:
            live.stop()
            state["pool"].shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="segsearch",
        summary="Find photos by where things are: sketch, photo, photo + sketch, caption words.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.live = live
    app.add_middleware(LimitBody, max_bytes=max_upload_bytes)
    secret = None if token is None else token.encode()

    hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    @app.middleware("http")
    async def check_token(request: Request, call_next):
        if hosts is not None:
            host = request.headers.get("host", "").lower()
            if _host_name(host) not in hosts:
                return JSONResponse(
                    {"error": f"this server answers only to {', '.join(sorted(hosts))} (Host: {host[:100]!r})"},
                    status_code=400,
                )
        if secret is not None and request.url.path.startswith("/api/"):
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() == "bearer":
                candidate = value.strip()
            else:  # the page percent-encodes what a cookie cannot hold
                candidate = unquote(request.cookies.get(TOKEN_COOKIE, ""))
            if not hmac.compare_digest(candidate.encode(), secret):
                return JSONResponse(
                    {"error": "this server needs its token: send the header 'Authorization: Bearer TOKEN'"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    # ---------------------------------------------------------------- errors: one JSON line, never a traceback
    @app.exception_handler(RequestError)
    async def _bad(request, e: RequestError):
        return JSONResponse({"error": str(e)}, status_code=e.status)

    @app.exception_handler(RequestTooLarge)
    async def _large(request, e):
        return JSONResponse({"error": _too_large(max_upload_bytes)}, status_code=413)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, e: StarletteHTTPException):
        msg = e.detail if isinstance(e.detail, str) else "bad request"
        if e.status_code == 404 and msg == "Not Found":
            msg = f"no such page or API call: {request.url.path} (the API is listed at /docs)"
        elif e.status_code == 405:
            msg = f"{request.method} is not allowed on {request.url.path} (the API is listed at /docs)"
        return JSONResponse({"error": msg}, status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, e: RequestValidationError):
        errs = e.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return JSONResponse({"error": f"{where or 'request'}: {first.get('msg', 'invalid')}"}, status_code=400)

    @app.exception_handler(Exception)
    async def _fault(request, e: Exception):
        log.exception("fault answering %s %s", request.method, request.url.path)
        return JSONResponse({"error": "the server failed on this request; its log says why"}, status_code=500)

    # ---------------------------------------------------------------- the API
    @app.get("/api/health", summary="the index's size and state")
    def health() -> dict:
        pi = live.current
        return {
            "photos": len(pi),
            "classes": len(pi.classes),
            "size": pi.size,
            "captions": pi.has_captions,
            "metadata": pi.index_dir is not None and (pi.index_dir / METADATA_FILE).is_file(),
            "rerank": int(getattr(pi.index, "rerank", 0) or 0),
            "generation": live.generation,
            "token": secret is not None,
            "fields": sorted(SEARCH_FIELDS),  # what POST /api/search takes: a page shows the controls it can use
        }

    @app.get("/api/classes", summary="the classes: index, sketch value, name, colour")
    def classes() -> list:
        pi = live.current
        return [
            {"index": c, "value": c + 1, "name": name, "color": "#{:02x}{:02x}{:02x}".format(*rgb)}
            for c, (name, rgb) in enumerate(zip(pi.classes, pi.palette.tolist()))
        ]

    @app.post("/api/search", summary="rank the photos", openapi_extra={"requestBody": _SEARCH_BODY})
    async def search(request: Request):
        pi = live.current  # this request's state, whatever the watcher swaps in meanwhile
        t0 = time.perf_counter()
        fields, image = await _read_search(request, max_upload_bytes)
        if image is not None and fields.photo is not None:
            raise RequestError("give the query photo either as an uploaded image or as photo (an id), not both")
        if image is None and not fields.has_query:
            raise RequestError(
                "nothing to search for: give draw (boxes), sketch, photo (an id), an uploaded image, text or like", 422
            )
        loop = asyncio.get_running_loop()
        maps, segment_ms = None, None
        if image is not None:  # the page sends its photo again with every stroke: segmented once, then cached
            key = hashlib.sha256(image).digest()
            maps = uploads.get(key)
            if maps is None:
                t1 = time.perf_counter()
                maps = await loop.run_in_executor(state["pool"], _segment_upload, pi, image)
                segment_ms = (time.perf_counter() - t1) * 1000
                uploads.put(key, maps)
        elif fields.photo is not None:  # PhotoIndex caches the maps of its last few photo files
            _, target = await run_in_threadpool(_photo_path, pi, fields.photo)  # locate() stats the file
            t1 = time.perf_counter()
            maps = await loop.run_in_executor(state["pool"], _library_call, pi.segment, target)
            segment_ms = (time.perf_counter() - t1) * 1000
        hits = await run_in_threadpool(_run_search, pi, fields, maps, search_threads)
        out = {
            "results": [_result(h) for h in hits],
            "took_ms": round((time.perf_counter() - t0) * 1000, 3),
            "segment_ms": None if segment_ms is None else round(segment_ms, 3),
            "query_labels": None if maps is None else _data_url(labels_png(np.argmax(maps, axis=0), pi.palette)),
            "photos": len(pi),
        }
        return JSONResponse(out)

    @app.get("/api/thumbnail/{id:path}", summary="a photo's JPEG thumbnail", response_class=Response)
    def thumbnail(id: str, size: int = THUMB_DEFAULT):
        if not THUMB_SIZES[0] <= size <= THUMB_SIZES[1]:
            raise RequestError(f"size must be from {THUMB_SIZES[0]} to {THUMB_SIZES[1]}; got {size}")
        _, path = _photo_path(live.current, id)
        try:
            data = thumbs.get(path, size)
        except FileNotFoundError:
            raise RequestError(f"the photo {id!r} is in the index but its file is gone", 404) from None
        except (OSError, ValueError, SyntaxError) as e:
            raise RequestError(f"the photo {id!r} cannot be read ({type(e).__name__})", 404) from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})

    @app.get("/api/photo/{id:path}", summary="a photo's original file", response_class=FileResponse)
    def photo(id: str):
        _, path = _photo_path(live.current, id)
        kind = mimetypes.guess_type(path.name)[0] or ""
        return FileResponse(
            path,
            media_type=kind if kind.startswith("image/") else "application/octet-stream",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300"},
        )

    @app.get("/api/labels/{id:path}", summary="a photo's label map as the index holds it", response_class=Response)
    def labels(id: str):
        pi = live.current
        key = _indexed_id(pi, id)
        data = labels_png(pi.predicted_labels(key), pi.palette)
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})

    # ---------------------------------------------------------------- the page
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page():
        index_html = STATIC_DIR / "index.html"
        if index_html.is_file():
            return FileResponse(index_html, media_type="text/html")
        return HTMLResponse("<!doctype html><title>segsearch</title><p>The API is at <a href=/docs>/docs</a>.")

    return app


async def _read_search(request: Request, max_bytes: int) -> tuple[SearchFields, bytes | None]:
    """The search fields and the uploaded photo's bytes (None without one) of a JSON or multipart request."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        from starlette.datastructures import UploadFile

        try:
            form = await request.form(max_files=1, max_fields=2, max_part_size=max_bytes)
        except RequestTooLarge:
            raise
        except Exception as e:  # the multipart parser's errors: a malformed body
            raise RequestError(f"cannot read the multipart body ({' '.join(str(e).split())})") from None
        try:
            unknown = sorted(set(form.keys()) - {"image", "query"})
            if unknown:
                raise RequestError(f"unknown part {unknown[0]!r}; send the parts 'image' and optionally 'query'")
            upload, query = form.get("image"), form.get("query")
            if upload is None:
                raise RequestError("a multipart search needs the part 'image' (the query photo); else send JSON")
            if not isinstance(upload, UploadFile):
                raise RequestError("the part 'image' must be a file")
            if isinstance(query, UploadFile):
                query = await query.read()
            fields = parse_fields(query)
            data = await upload.read()
        finally:
            await form.close()
        return fields, data
    if kind not in ("application/json", ""):
        raise RequestError(f"send the search as application/json or multipart/form-data, not {kind}", 415)
    return parse_fields(await request.body()), None


def _host_name(host: str) -> str:
    """A Host header without its port: "[::1]:8000" -> "[::1]", "localhost:8000" -> "localhost"."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host


def _indexed_id(pi: PhotoIndex, id_text) -> str | int:
    """The index's id for ``id_text`` (ids are strings, or numbers in an index built from Python); 404 if absent."""
    key: str | int = id_text
    if not pi.index.string_ids:
        try:
            key = int(id_text)
        except (TypeError, ValueError):
            key = None
    if key is None or key not in pi.index:
        raise RequestError(f"no photo with id {str(id_text)[:200]!r} in the index", 404)
    return key


def _photo_path(pi: PhotoIndex, id_text) -> tuple[str | int, Path]:
    """(id, file) of an indexed photo, through the index's photo confinement; 404 if unknown or refused."""
    key = _indexed_id(pi, id_text)
    path, note = pi.locate(key)
    if path is None:
        raise RequestError(f"the photo {str(key)[:200]!r} is not served: {note}", 404)
    return key, path


def _segment_upload(pi: PhotoIndex, data: bytes) -> np.ndarray:
    maps = _library_call(pi.segment, decode_photo(data))
    maps.flags.writeable = False
    return maps


def _library_call(fn, *args, **kwargs):
    """Call the library; its ValueErrors (bad input it found, OptionError included) become 422 with their words."""
    try:
        return fn(*args, **kwargs)
    except IndexFormatError:  # the folder is damaged: a fault of the server's side, logged
        raise
    except FileNotFoundError as e:
        raise RequestError(" ".join(str(e).split()), 404) from None
    except ValueError as e:
        msg = " ".join(str(e).split()).replace("'segsearch classes INDEX_DIR' lists", "GET /api/classes lists")
        raise RequestError(msg, 422) from None


def _run_search(pi: PhotoIndex, f: SearchFields, maps, threads: int):
    from ..sketch.files import draw_boxes

    def run():
        sketch = None if f.sketch is None else pi.sketch_labels(decode_sketch(f.sketch))
        if f.draw:
            sketch = draw_boxes(sketch, f.draw, pi.classes, pi.size)
        if sketch is not None and maps is None and not f.text and not f.refine.get("like") and (sketch < 0).all():
            raise ValueError("the sketch is empty (nothing drawn); draw at least one class, or give a photo or text")
        return pi.search(
            maps=maps,
            sketch=sketch,
            text=f.text,
            k=f.k,
            threads=threads,
            rerank=f.rerank,
            explain=f.explain,
            **f.filters,
            **f.refine,
        )

    return _library_call(run)


def _result(h) -> dict:
    d = h.as_dict()
    d.pop("path")  # the server's file system is not the client's business
    if d["note"] is None:
        d.pop("note")
    q = quote(str(h.id), safe="/")
    shown = h.path is not None
    d["thumbnail"] = f"/api/thumbnail/{q}" if shown else None
    d["photo"] = f"/api/photo/{q}" if shown else None
    d["labels"] = f"/api/labels/{q}"
    return d


def labels_png(labels: np.ndarray, palette: np.ndarray) -> bytes:
    """An int label map (n, n) as an RGB PNG in the class colours."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(colorize(labels, palette), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("segsearch")
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        return "unknown"
