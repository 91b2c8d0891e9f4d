"""segsearch serve's HTTP API through FastAPI's TestClient: every endpoint, every bad request, the token, the
upload limits, the photo confinement, new photos picked up without a restart, photo queries off the event loop.

A tiny synthetic folder (tests/photo_folder.py) and a fake network: no real network runs here."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import struct
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

import segsearch  # noqa: E402
from photo_folder import CLASSES, SIZE, FakeSegmenter, make_index_folder  # noqa: E402
from segsearch.cli import main  # noqa: E402
from segsearch.engine.index import empty_like  # noqa: E402
from segsearch.library.photo_index import PhotoIndex  # noqa: E402
from segsearch.library.shards import add_shard  # noqa: E402
from segsearch.serve.app import create_app  # noqa: E402
from segsearch.serve.server import check_exposure, is_loopback  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_index_folder(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def client(folder):
    with TestClient(create_app(folder[0], segmenter=FakeSegmenter(), reload_seconds=0)) as c:
        yield c


@pytest.fixture(scope="module")
def pi(folder):
    return PhotoIndex.open(folder[0], segmenter=FakeSegmenter())


def _png(arr, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _ids(resp) -> list:
    assert resp.status_code == 200, resp.text
    return [r["id"] for r in resp.json()["results"]]


def _sky_road() -> np.ndarray:
    lab = np.full((SIZE, SIZE), -1, np.int32)
    lab[: SIZE // 3] = CLASSES.index("sky")
    lab[-SIZE // 3 :] = CLASSES.index("road")
    return lab


def _error(resp, status: int) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and "\n" not in body["error"]
    assert "Traceback" not in body["error"]
    return body["error"]


# ---------------------------------------------------------------------------------------------- the contract
def test_health_and_classes(client, folder, pi):
    h = client.get("/api/health").json()
    assert h["photos"] == len(folder[2]) == len(pi) and h["classes"] == len(CLASSES) and h["size"] == SIZE
    assert h["captions"] is True and h["token"] is False and h["generation"] == 0
    assert {"k", "draw", "sketch", "photo", "text", "exclude", "explain", "after", "weights", "like", "unlike"} <= set(
        h["fields"]
    )
    cls = client.get("/api/classes").json()
    assert [c["name"] for c in cls] == CLASSES
    assert [c["index"] for c in cls] == list(range(len(CLASSES)))
    assert [c["value"] for c in cls] == [i + 1 for i in range(len(CLASSES))]
    assert all(c["color"] == "#{:02x}{:02x}{:02x}".format(*rgb) for c, rgb in zip(cls, pi.palette.tolist()))


def test_search_by_boxes_equals_the_library(client, pi):
    resp = client.post("/api/search", json={"k": 5, "draw": [{"class": "sky", "box": [0, 0, 1, 0.4]}]})
    from segsearch.sketch.files import sketch_from_boxes

    want = pi.search(sketch=sketch_from_boxes([("sky", [0, 0, 1, 0.4])], pi.classes, SIZE), k=5, threads=1)
    body = resp.json()
    assert _ids(resp) == [h.id for h in want]
    assert [r["distance"] for r in body["results"]] == pytest.approx([h.distance for h in want], rel=1e-6)
    assert [r["rank"] for r in body["results"]] == [1, 2, 3, 4, 5]
    r0 = body["results"][0]
    assert r0["thumbnail"].startswith("/api/thumbnail/") and r0["photo"].startswith("/api/photo/")
    assert "path" not in r0  # the server's file system is not shown
    assert body["query_labels"] is None and body["segment_ms"] is None and body["took_ms"] >= 0
    # a class given by index is the same class
    by_index = client.post("/api/search", json={"k": 5, "draw": [{"class": 1, "box": [0, 0, 1, 0.4]}]})
    assert _ids(by_index) == _ids(resp)


@pytest.mark.parametrize("encoding", ["gray", "rgba", "data-url"])
def test_search_by_sketch_png(client, pi, encoding):
    lab = _sky_road()
    if encoding == "rgba":  # the page's encoding: class colours, transparent = unspecified
        rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
        rgba[lab >= 0, :3] = pi.palette[lab[lab >= 0]]
        rgba[lab >= 0, 3] = 255
        sketch = _b64(_png(rgba, "RGBA"))
    else:
        sketch = _b64(_png((lab + 1).astype(np.uint8), "L"))
        if encoding == "data-url":
            sketch = "data:image/png;base64," + sketch
    want = [h.id for h in pi.search(sketch=lab, k=7, threads=1)]
    assert _ids(client.post("/api/search", json={"k": 7, "sketch": sketch})) == want
    # boxes paint over the sketch
    resp = client.post(
        "/api/search", json={"k": 7, "sketch": sketch, "draw": [{"class": "tree", "box": [0, 0, 0.5, 1]}]}
    )
    both = lab.copy()
    both[:, : SIZE // 2] = CLASSES.index("tree")
    assert _ids(resp) == [h.id for h in pi.search(sketch=both, k=7, threads=1)]


def test_search_by_indexed_photo_and_upload(client, folder, pi):
    index_dir, photos, names, _ = folder
    want = pi.search(image=photos / names[3], k=4, threads=1)
    resp = client.post("/api/search", json={"k": 4, "photo": names[3]})
    assert _ids(resp) == [h.id for h in want] and _ids(resp)[0] == names[3]
    body = resp.json()
    assert body["segment_ms"] >= 0 and body["query_labels"].startswith("data:image/png;base64,")
    seen = Image.open(io.BytesIO(base64.b64decode(body["query_labels"].split(",", 1)[1])))
    assert seen.size == (SIZE, SIZE)
    expect = pi.palette[np.argmax(pi.segment(photos / names[3]), axis=0)]
    assert np.array_equal(np.asarray(seen.convert("RGB")), expect)  # what the system sees of the photo
    with open(photos / names[3], "rb") as f:
        up = client.post("/api/search", files={"image": ("q.png", f, "image/png")}, data={"query": '{"k": 4}'})
    assert _ids(up) == [h.id for h in want]
    # an upload with a sketch drawn over it, and with text
    lab = _sky_road()
    with open(photos / names[3], "rb") as f:
        q = {"k": 4, "sketch": _b64(_png((lab + 1).astype(np.uint8), "L")), "text": "car"}
        up = client.post("/api/search", files={"image": ("q.png", f, "image/png")}, data={"query": json.dumps(q)})
    want = pi.search(image=photos / names[3], sketch=lab, text="car", k=4, threads=1)
    assert _ids(up) == [h.id for h in want]
    assert [r["text_score"] for r in up.json()["results"]] == [h.text_score for h in want]


def test_text_search(client, pi):
    resp = client.post("/api/search", json={"text": "trees", "k": 6})
    want = pi.search(text="trees", k=6)
    assert _ids(resp) == [h.id for h in want]
    assert all(r["distance"] is None for r in resp.json()["results"])
    assert [r["bm25"] for r in resp.json()["results"]] == pytest.approx([h.bm25 for h in want])


def test_exclude_and_explain(client, pi):
    draw = [{"class": "sky", "box": [0, 0, 1, 0.4]}, {"class": "road", "box": [0, 0.6, 1, 1]}]
    from segsearch.sketch.files import sketch_from_boxes

    lab = sketch_from_boxes([(d["class"], d["box"]) for d in draw], pi.classes, SIZE)
    for exclude in (["building"], {"water": 0.2, "car": 0.5}, [CLASSES.index("water")]):
        resp = client.post("/api/search", json={"k": 40, "draw": draw, "exclude": exclude})
        want = pi.search(sketch=lab, k=40, exclude=exclude, threads=1)
        assert _ids(resp) == [h.id for h in want] and 0 < len(want) < len(pi)  # some photos left out
    body = client.post("/api/search", json={"k": 5, "draw": draw, "explain": True}).json()
    for r in body["results"]:
        parts = r["explain"]
        assert parts and {"class", "name", "part"} <= set(parts[0])
        assert [p["part"] for p in parts] == sorted((p["part"] for p in parts), reverse=True)
        assert sum(p["part"] for p in parts) == pytest.approx(r["distance"], rel=1e-3)
    plain = client.post("/api/search", json={"k": 5, "draw": draw}).json()
    assert all("explain" not in r for r in plain["results"])
    for bad, status, words in [
        ({"exclude": "car"}, 400, "exclude must be"),
        ({"exclude": [None]}, 400, "exclude must be"),
        ({"exclude": {"car": "much"}}, 400, "exclude must be"),
        ({"exclude": ["zebra"]}, 422, "zebra"),
        ({"exclude": {"car": 2}}, 422, "(0, 1]"),
        ({"explain": "yes"}, 400, "explain must be"),
    ]:
        msg = _error(client.post("/api/search", json={"draw": draw, **bad}), status)
        assert words in msg, msg


def test_emphasis_and_like(client, folder, pi):
    names = folder[2]
    draw = [{"class": "sky", "box": [0, 0, 1, 0.4]}, {"class": "building", "box": [0, 0.4, 0.5, 1]}]
    from segsearch.sketch.files import sketch_from_boxes

    lab = sketch_from_boxes([(d["class"], d["box"]) for d in draw], pi.classes, SIZE)
    cases = [
        ({"draw": draw, "weights": {"building": 6}}, {"sketch": lab, "weights": {"building": 6}}),
        ({"like": names[:2]}, {"like": names[:2]}),  # like alone is a query
        ({"like": names[:2], "unlike": [names[5]]}, {"like": names[:2], "unlike": [names[5]]}),
        ({"photo": names[3], "unlike": [names[7]]}, {"image": folder[1] / names[3], "unlike": [names[7]]}),
    ]
    for body, kwargs in cases:
        resp = client.post("/api/search", json={"k": 8, **body})
        want = pi.search(k=8, threads=1, **kwargs)
        assert _ids(resp) == [h.id for h in want], body
        assert [r["distance"] for r in resp.json()["results"]] == pytest.approx([h.distance for h in want], rel=1e-5)
    plain = _ids(client.post("/api/search", json={"k": 8, "draw": draw}))
    assert plain != _ids(client.post("/api/search", json={"k": 8, "draw": draw, "weights": {"building": 6}}))
    for bad, status, words in [
        ({"draw": draw, "weights": ["building"]}, 400, "weights must be"),
        ({"draw": draw, "weights": {"building": "lots"}}, 400, "weights must be"),
        ({"draw": draw, "weights": {"unicorn": 2}}, 422, "unicorn"),
        ({"like": "photo000.png"}, 400, "like must be a list"),
        ({"like": [None]}, 400, "like must be a list"),
        ({"like": ["nope.png"]}, 422, "not in the index"),
        ({"unlike": [names[0]]}, 422, "nothing to search for"),  # unlike moves a query: there must be one
    ]:
        msg = _error(client.post("/api/search", json=bad), status)
        assert words in msg, msg


def test_k_larger_than_index_returns_all_sorted(client, folder):
    resp = client.post("/api/search", json={"k": 1000, "draw": [{"class": "road", "box": [0, 0.5, 1, 1]}]})
    d = [r["distance"] for r in resp.json()["results"]]
    assert len(d) == len(folder[2]) and d == sorted(d)


def test_thumbnails_originals_and_label_maps(client, folder, pi):
    _, photos, names, _ = folder
    t = client.get(f"/api/thumbnail/{names[0]}", params={"size": 64})
    assert t.status_code == 200 and t.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(t.content)).size) <= 64
    o = client.get(f"/api/photo/{names[0]}")
    assert o.status_code == 200 and o.content == (photos / names[0]).read_bytes()
    assert o.headers["content-type"] == "image/png" and o.headers["x-content-type-options"] == "nosniff"
    lab = client.get(f"/api/labels/{names[0]}")
    assert lab.status_code == 200 and lab.headers["content-type"] == "image/png"
    got = np.asarray(Image.open(io.BytesIO(lab.content)).convert("RGB"))
    assert np.array_equal(got, pi.palette[pi.predicted_labels(names[0])])
    _error(client.get(f"/api/thumbnail/{names[0]}", params={"size": 5000}), 400)
    _error(client.get(f"/api/thumbnail/{names[0]}", params={"size": "big"}), 400)


def test_docs_and_openapi(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/health", "/api/classes", "/api/search"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/api/search"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


# ---------------------------------------------------------------------------------------------- bad requests
@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"{", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'"sky"', 400, "JSON object"),
        (b'{"kk": 3}', 400, "unknown field 'kk'"),
        (b'{"k": 0}', 400, "k must be"),
        (b'{"k": 1001}', 400, "k must be"),
        (b'{"k": "10"}', 400, "k must be"),
        (b'{"k": true}', 400, "k must be"),
        (b'{"rerank": -1}', 400, "rerank must be"),
        (b"{}", 422, "nothing to search for"),
        (b'{"text": "   "}', 422, "nothing to search for"),
        (b'{"draw": "sky"}', 400, "draw must be a list"),
        (b'{"draw": [{"class": "sky"}]}', 400, "draw[0]"),
        (b'{"draw": [{"class": "sky", "box": [0, 0, 1]}]}', 400, "four numbers"),
        (b'{"draw": [{"class": "sky", "box": [0, 0, "1", 1]}]}', 400, "four numbers"),
        (b'{"draw": [{"class": null, "box": [0, 0, 1, 1]}]}', 400, "class name or index"),
        (b'{"draw": [{"class": "zebra", "box": [0, 0, 1, 1]}]}', 422, "unknown class name 'zebra'"),
        (b'{"draw": [{"class": "skye", "box": [0, 0, 1, 1]}]}', 422, "did you mean 'sky'"),
        (b'{"draw": [{"class": 99, "box": [0, 0, 1, 1]}]}', 422, "unknown class"),
        (b'{"draw": [{"class": "sky", "box": [0, 0, 1.5, 1]}]}', 422, "0 <= x0 < x1 <= 1"),
        (b'{"draw": [{"class": "sky", "box": [0.5, 0, 0.5, 1]}]}', 422, "0 <= x0 < x1 <= 1"),
        (b'{"sketch": 5}', 400, "base64 PNG"),
        (b'{"sketch": "%%%"}', 400, "not valid base64"),
        (b'{"sketch": "data:text/plain,abc"}', 400, "base64 data URL"),
        (b'{"sketch": "aGVsbG8="}', 422, "not an image"),
        (b'{"photo": "nope.png"}', 404, "no photo with id 'nope.png'"),
        (b'{"photo": "../../../etc/passwd"}', 404, "no photo with id"),
        (b'{"photo": ""}', 400, "photo must be"),
        (b'{"photo": ["a"]}', 400, "photo must be"),
        (b'{"text": 5}', 400, "text must be"),
        (b'{"text": "zzzqqq", "after": "yesterday"}', 422, "after"),
        (b'{"text": "car", "folder": "x"}', 422, "no photo metadata"),
    ],
)
def test_bad_json_requests(client, body, status, words):
    msg = _error(client.post("/api/search", content=body, headers={"content-type": "application/json"}), status)
    assert words in msg, msg


def test_bad_sketches(client):
    empty = _b64(_png(np.zeros((8, 8), np.uint8), "L"))
    assert "sketch is empty" in _error(client.post("/api/search", json={"sketch": empty}), 422)
    too_high = _b64(_png(np.full((8, 8), 200, np.uint8), "L"))
    assert "class 199" in _error(client.post("/api/search", json={"sketch": too_high}), 422)
    off_palette = np.zeros((8, 8, 3), np.uint8)
    off_palette[:4] = (1, 2, 3)
    msg = _error(client.post("/api/search", json={"sketch": _b64(_png(off_palette, "RGB"))}), 422)
    assert "not class colours" in msg
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, format="JPEG")
    assert "not an image of a known kind" in _error(
        client.post("/api/search", json={"sketch": _b64(jpeg.getvalue())}), 422
    )


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that says it is width x height (8-bit gray) with a tiny IDAT: what a decompression bomb's header says."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_upload_limits(client, folder):
    photos, names = folder[1], folder[2]
    bomb = _png_header_only(30000, 30000)  # 900 megapixels
    msg = _error(client.post("/api/search", files={"image": ("b.png", bomb, "image/png")}), 422)
    assert "too many pixels" in msg
    assert "too many pixels" in _error(client.post("/api/search", json={"sketch": _b64(bomb)}), 422)
    big_sketch = _png_header_only(5000, 5000)  # within Pillow's limit, above a sketch's
    assert "more than" in _error(client.post("/api/search", json={"sketch": _b64(big_sketch)}), 422)
    # not an image: 415, never decoded
    assert "not an image" in _error(client.post("/api/search", files={"image": ("x.txt", b"hello", "text/plain")}), 415)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
    _error(client.post("/api/search", files={"image": ("x.svg", svg, "image/svg+xml")}), 415)
    assert "empty" in _error(client.post("/api/search", files={"image": ("x.png", b"", "image/png")}), 400)
    # a damaged photo
    data = (photos / names[0]).read_bytes()
    _error(client.post("/api/search", files={"image": ("t.png", data[: len(data) // 2], "image/png")}), 422)
    # 40 MB: refused by its Content-Length, and when sent chunked (no length) as soon as the cap is passed
    big = b"\0" * 40_000_000
    assert "larger than" in _error(client.post("/api/search", files={"image": ("big.png", big, "image/png")}), 413)

    def chunks():
        for _ in range(40):
            yield b"\0" * 1_000_000

    msg = _error(client.post("/api/search", content=chunks(), headers={"content-type": "application/json"}), 413)
    assert "larger than" in msg


def test_bad_multipart_requests(client, folder):
    photo = (folder[1] / folder[2][0]).read_bytes()
    f = {"image": ("p.png", photo, "image/png")}
    assert "part 'image'" in _error(client.post("/api/search", files={"query": (None, '{"k": 3}')}), 400)
    assert "unknown part 'extra'" in _error(client.post("/api/search", files={**f, "extra": (None, "1")}), 400)
    assert "not valid JSON" in _error(client.post("/api/search", files=f, data={"query": "{"}), 400)
    msg = _error(client.post("/api/search", files=f, data={"query": json.dumps({"photo": folder[2][1]})}), 400)
    assert "not both" in msg
    assert "must be a file" in _error(client.post("/api/search", files={"image": (None, "abc")}), 400)
    bad = client.post("/api/search", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=x"})
    _error(bad, 400)
    msg = _error(client.post("/api/search", content=b"k=3", headers={"content-type": "text/plain"}), 415)
    assert "application/json" in msg


@pytest.mark.parametrize(
    "path",
    [
        "/api/photo/../../../../etc/passwd",
        "/api/photo/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/api/photo//etc/passwd",
        "/api/thumbnail/..%2f..%2fetc%2fpasswd",
        "/api/labels/nope.png",
        "/api/photo/photo000.png%00.txt",
    ],
)
def test_paths_are_ids_never_files(client, path):
    resp = client.get(path)
    assert resp.status_code == 404 and "root:" not in resp.text
    assert set(resp.json()) == {"error"}


def test_unknown_routes_and_methods(client):
    assert "no such page" in _error(client.get("/api/nothing"), 404)
    assert "not allowed" in _error(client.delete("/api/health"), 405)
    assert "not allowed" in _error(client.get("/api/search"), 405)


def test_refused_ids_are_not_served(tmp_path, folder):
    """An index folder naming a photo outside its photos folder (it comes from someone else): the search still
    ranks it, but gives no URL for it, and asking by id is refused."""
    index_dir, photos, names, _ = folder
    outside = tmp_path / "secret.png"
    outside.write_bytes((photos / names[0]).read_bytes())
    whole = segsearch.Index.load(index_dir / "index.segsearch", mmap=False)
    bad = empty_like(whole).add_codes(whole.codes[:3], ids=["../secret.png", names[1], names[2]])
    d = tmp_path / "idx"
    d.mkdir()
    bad.save(d / "index.segsearch")
    sub = tmp_path / "photos"
    sub.mkdir()
    for n in names[1:3]:
        (sub / n).write_bytes((photos / n).read_bytes())
    with TestClient(create_app(d, segmenter=FakeSegmenter(), photos_dir=sub, reload_seconds=0)) as c:
        res = c.post("/api/search", json={"k": 3, "draw": [{"class": 0, "box": [0, 0, 1, 1]}]}).json()["results"]
        refused = [r for r in res if r["id"] == "../secret.png"]
        assert len(refused) == 1 and refused[0]["thumbnail"] is None and refused[0]["photo"] is None
        assert refused[0]["note"]
        assert "not served" in _error(c.get("/api/photo/..%2Fsecret.png"), 404)
        assert "not served" in _error(c.post("/api/search", json={"photo": "../secret.png"}), 404)


def test_an_uploaded_photo_is_segmented_once(folder):
    """The page sends its query photo again with every stroke: the network runs on it once."""
    seg = FakeSegmenter()
    photos, names = folder[1], folder[2]
    data = (photos / names[5]).read_bytes()
    with TestClient(create_app(folder[0], segmenter=seg, reload_seconds=0)) as c:
        first = c.post("/api/search", files={"image": ("p.png", data, "image/png")}).json()
        calls = seg.calls
        lab = _sky_road()
        q = json.dumps({"sketch": _b64(_png((lab + 1).astype(np.uint8), "L"))})
        again = c.post("/api/search", files={"image": ("p.png", data, "image/png")}, data={"query": q}).json()
        assert seg.calls == calls and first["segment_ms"] is not None and again["segment_ms"] is None
        pi = PhotoIndex.open(folder[0], segmenter=FakeSegmenter())
        assert [r["id"] for r in again["results"]] == [h.id for h in pi.search(image=photos / names[5], sketch=lab)]
        other = (photos / names[6]).read_bytes()
        c.post("/api/search", files={"image": ("p.png", other, "image/png")})
        assert seg.calls == calls + 1  # another photo is segmented


# ---------------------------------------------------------------------------------------------- the token
def test_token(folder):
    with TestClient(create_app(folder[0], segmenter=FakeSegmenter(), token="s3cret", reload_seconds=0)) as c:
        assert "token" in _error(c.get("/api/health"), 401)
        assert c.get("/api/health").headers["www-authenticate"] == "Bearer"
        _error(c.get("/api/health", headers={"Authorization": "Bearer wrong"}), 401)
        _error(c.get("/api/health", headers={"Authorization": "Basic s3cret"}), 401)
        _error(c.post("/api/search", json={"text": "car"}), 401)
        _error(c.get(f"/api/photo/{folder[2][0]}"), 401)
        ok = c.get("/api/health", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["token"] is True
        c.cookies.set("segsearch_token", "s3cret")  # what the page sets so that <img> URLs load
        assert c.get(f"/api/thumbnail/{folder[2][0]}").status_code == 200
        c.cookies.clear()
    with TestClient(create_app(folder[0], segmenter=FakeSegmenter(), token="a;b c%", reload_seconds=0)) as c:
        c.cookies.set("segsearch_token", "a%3Bb%20c%25")  # the page percent-encodes what a cookie cannot hold
        assert c.get("/api/health").status_code == 200
        c.cookies.clear()
        assert c.get("/api/health", headers={"Authorization": "Bearer a;b c%"}).status_code == 200
    with TestClient(create_app(folder[0], segmenter=FakeSegmenter(), token="s3cret", reload_seconds=0)) as c:
        # the page, the schema and the docs hold no photos: no token
        assert c.get("/").status_code == 200 and c.get("/openapi.json").status_code == 200
    with pytest.raises(ValueError, match="token"):
        create_app(folder[0], token="  ")


def test_a_loopback_server_answers_only_to_loopback_names(folder):
    """DNS rebinding: a page of evil.example whose name resolves to 127.0.0.1 sends Host: evil.example."""
    from segsearch.serve.server import LOOPBACK_NAMES

    app = create_app(folder[0], segmenter=FakeSegmenter(), reload_seconds=0, allowed_hosts=LOOPBACK_NAMES)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/health").status_code == 200
        for host in ("localhost:8000", "[::1]:8000", "127.0.0.1"):
            assert c.get("/api/health", headers={"host": host}).status_code == 200
        for host in ("evil.example:8000", "evil.example", "127.0.0.1.evil.example", ""):
            assert "answers only to" in _error(c.get("/api/health", headers={"host": host}), 400)
            _error(c.get("/", headers={"host": host}), 400)


def test_exposure_needs_a_token(capsys, folder):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    check_exposure("127.0.0.1", None, False)
    check_exposure("0.0.0.0", "tok", False)
    check_exposure("0.0.0.0", None, True)
    with pytest.raises(ValueError, match="--token"):
        check_exposure("0.0.0.0", None, False)
    assert main(["serve", str(folder[0]), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("segsearch: error: --host 0.0.0.0") and "--token" in err[0]
    with pytest.raises(SystemExit):
        main(["serve", str(folder[0]), "--port", "70000"])
    assert "expected a port" in capsys.readouterr().err
    assert main(["serve", str(folder[0] / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0] and err[0].startswith("segsearch: error:")


# ---------------------------------------------------------------------------------------------- faults
class BrokenSegmenter(FakeSegmenter):
    def predict(self, images, size=64, **kwargs):
        raise RuntimeError("a fault inside the network")


def test_a_fault_is_a_500_without_traceback(folder, caplog):
    app = create_app(folder[0], segmenter=BrokenSegmenter(), reload_seconds=0)
    with TestClient(app, raise_server_exceptions=False) as c:
        msg = _error(c.post("/api/search", json={"photo": folder[2][0]}), 500)
        assert "log" in msg and "fault inside" not in msg
        assert c.post("/api/search", json={"text": "car"}).status_code == 200  # and it keeps serving
    assert any("fault answering POST /api/search" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------- new photos
def test_new_shards_are_picked_up_whole(tmp_path, folder):
    import shutil

    index_dir, photos, names, _ = folder
    d = tmp_path / "idx"
    shutil.copytree(index_dir, d)
    whole = segsearch.Index.load(index_dir / "index.segsearch", mmap=False)
    base = empty_like(whole).add_codes(whole.codes[:30], ids=list(whole.ids[:30]))
    base.save(d / "index.segsearch")
    app = create_app(d, segmenter=FakeSegmenter(), photos_dir=photos, reload_seconds=0)
    live = app.state.live
    with TestClient(app) as c:
        q = {"k": 100, "draw": [{"class": "sky", "box": [0, 0, 1, 0.5]}]}
        assert len(_ids(c.post("/api/search", json=q))) == 30
        assert not live.check()  # nothing changed
        held = live.current  # a request in flight keeps the state it started with
        add_shard(d, empty_like(whole).add_codes(whole.codes[30:], ids=list(whole.ids[30:])))
        assert live.check() and live.generation == 1
        assert len(held) == 30 and len(live.current) == len(names)
        assert c.get("/api/health").json()["generation"] == 1
        assert sorted(_ids(c.post("/api/search", json=q))) == sorted(names)
        assert c.get(f"/api/thumbnail/{names[-1]}").status_code == 200
        # the replaced state is closed once no request can hold it any more (a state on Ray stops its actors)
        assert live.close_retired() == 0  # not yet: a request may still be answering from it
        assert held.captions.bm25("car") and live.close_retired(older_than=0) == 1
        with pytest.raises(sqlite3.ProgrammingError):
            held.captions.bm25("car")
        assert c.post("/api/search", json={"text": "car"}).status_code == 200  # the current state is open
        # a folder caught half-written (a manifest that does not parse) is not swapped in: the old state serves
        (d / "shards.json").write_text("{ half written")
        assert not live.check() and live.last_error and len(live.current) == len(names)
        assert len(_ids(c.post("/api/search", json=q))) == len(names)


def test_watcher_thread_picks_up_new_photos(tmp_path, folder):
    import shutil
    import time

    index_dir, photos, names, _ = folder
    d = tmp_path / "idx"
    shutil.copytree(index_dir, d)
    whole = segsearch.Index.load(index_dir / "index.segsearch", mmap=False)
    empty_like(whole).add_codes(whole.codes[:35], ids=list(whole.ids[:35])).save(d / "index.segsearch")
    with TestClient(create_app(d, segmenter=FakeSegmenter(), photos_dir=photos, reload_seconds=0.05)) as c:
        assert c.get("/api/health").json()["photos"] == 35
        add_shard(d, empty_like(whole).add_codes(whole.codes[35:], ids=list(whole.ids[35:])))
        for _ in range(400):  # the watcher looks every 0.05 s; give it up to 20 s on a loaded machine
            if c.get("/api/health").json()["photos"] == len(names):
                break
            time.sleep(0.05)
        assert c.get("/api/health").json()["photos"] == len(names)


# ---------------------------------------------------------------------------------------------- concurrency
class GatedSegmenter(FakeSegmenter):
    """Blocks in predict until released: a photo being segmented for as long as the test wants."""

    def __init__(self):
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def predict(self, images, size=64, **kwargs):
        self.entered.set()
        assert self.release.wait(60)
        return super().predict(images, size, **kwargs)


def test_sketch_queries_answer_while_a_photo_is_segmented(folder):
    seg = GatedSegmenter()
    photo = (folder[1] / folder[2][0]).read_bytes()
    with TestClient(create_app(folder[0], segmenter=seg, reload_seconds=0, photo_workers=1)) as c:
        out = {}
        t = threading.Thread(
            target=lambda: out.setdefault("r", c.post("/api/search", files={"image": ("p.png", photo, "image/png")}))
        )
        t.start()
        try:
            assert seg.entered.wait(30)  # the photo is in the network now, and stays there
            for _ in range(5):
                r = c.post("/api/search", json={"k": 3, "draw": [{"class": "sky", "box": [0, 0, 1, 0.5]}]})
                assert r.status_code == 200 and len(r.json()["results"]) == 3
            assert c.post("/api/search", json={"text": "car"}).status_code == 200
            assert "r" not in out  # the photo query is still waiting for its network
        finally:
            seg.release.set()
            t.join(60)
        assert out["r"].status_code == 200 and out["r"].json()["results"][0]["id"] == folder[2][0]
