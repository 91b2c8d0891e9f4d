"""What a client sends to ``POST /api/search``, checked field by field: every refusal is a :class:`RequestError` with
the HTTP status and one line saying what was wrong and what to do. Nothing here touches the index or the network;
images are decoded here, with the limits an untrusted upload needs (image formats only, Pillow's decompression-bomb
limit, a pixel cap)."""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from ..errors import RequestError

__all__ = ["SEARCH_FIELDS", "SearchFields", "parse_fields", "decode_photo", "decode_sketch", "MAX_K"]

#: The most results one search returns.
MAX_K = 1000
#: Formats an uploaded query photo may have (Pillow decodes nothing else).
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO")
#: The most pixels a query photo may have: Pillow's own decompression-bomb limit (89 megapixels).
MAX_PHOTO_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
#: The most pixels a sketch PNG may have (a label map needs no more than 4096 x 4096).
MAX_SKETCH_PIXELS = 4096 * 4096

#: The fields of a search request.
SEARCH_FIELDS = {
    "k",
    "draw",
    "sketch",
    "photo",
    "text",
    "rerank",
    "after",
    "before",
    "folder",
    "camera",
    "exclude",
    "explain",
    "weights",
    "like",
    "unlike",
}


@dataclass
class SearchFields:
    """The checked fields of a search (see docs/http-api.md)."""

    k: int = 10
    draw: list[tuple[str, list[float]]] = field(default_factory=list)
    sketch: bytes | None = None  # PNG bytes
    photo: str | None = None  # an indexed photo's id
    text: str | None = None
    rerank: int | None = None
    filters: dict = field(default_factory=dict)  # after, before, folder, camera, exclude
    explain: bool = False
    refine: dict = field(default_factory=dict)  # weights, like, unlike

    @property
    def has_query(self) -> bool:
        has_text = bool(self.text and self.text.strip())
        liked = bool(self.refine.get("like"))
        return bool(self.draw) or self.sketch is not None or self.photo is not None or has_text or liked


def parse_fields(body: bytes | str | None) -> SearchFields:
    """The search fields of a JSON object (bytes or text; None or empty: no fields)."""
    if body is None or (isinstance(body, (bytes, str)) and not body.strip()):
        return SearchFields()
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f'the query is not valid JSON ({e}); send a JSON object such as {{"k": 10}}') from None
    if not isinstance(obj, dict):
        raise RequestError(f"the query must be a JSON object, not {type(obj).__name__}")
    unknown = sorted(set(obj) - SEARCH_FIELDS)
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}; the fields are {', '.join(sorted(SEARCH_FIELDS))}")
    f = SearchFields()
    if obj.get("k") is not None:
        f.k = _whole(obj["k"], "k", 1, MAX_K)
    if obj.get("rerank") is not None:
        f.rerank = _whole(obj["rerank"], "rerank", 0, 1 << 20)
    if obj.get("draw") is not None:
        f.draw = _boxes(obj["draw"])
    if obj.get("sketch") is not None:
        f.sketch = _base64_png(obj["sketch"])
    if obj.get("photo") is not None:
        if not isinstance(obj["photo"], (str, int)) or isinstance(obj["photo"], bool) or obj["photo"] == "":
            raise RequestError("photo must be the id of an indexed photo (a result's id)")
        f.photo = obj["photo"]
    if obj.get("exclude") is not None:
        f.filters["exclude"] = _exclude(obj["exclude"])
    if obj.get("weights") is not None:
        f.refine["weights"] = _weights(obj["weights"])
    for name in ("like", "unlike"):
        if obj.get(name) is not None:
            f.refine[name] = _ids(obj[name], name)
    if obj.get("explain") is not None:
        if not isinstance(obj["explain"], bool):
            raise RequestError(f"explain must be true or false; got {obj['explain']!r:.40}")
        f.explain = obj["explain"]
    for name in ("text", "after", "before", "folder", "camera"):
        v = obj.get(name)
        if v is None:
            continue
        if not isinstance(v, str) or len(v) > 1000:
            raise RequestError(f"{name} must be a string of at most 1000 characters")
        if name == "text":
            f.text = v
        else:
            f.filters[name] = v
    return f


def _whole(v, name: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise RequestError(f"{name} must be a whole number from {lo} to {hi}; got {v!r}")
    return v


def _weights(v) -> dict:
    """``weights``: an object {class name or index: weight}; PhotoIndex.search checks the names and weights."""
    ok = isinstance(v, dict) and len(v) <= 1000
    ok = ok and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v.values())
    if not ok:
        raise RequestError('weights must be an object {"bus": 4} of classes and how much more they count')
    return v


def _ids(v, name: str) -> list:
    """``like`` / ``unlike``: a list of result ids; PhotoIndex.search checks that they are in the index."""
    ok = isinstance(v, list) and len(v) <= 1000
    ok = ok and all(isinstance(i, str) or (isinstance(i, int) and not isinstance(i, bool)) for i in v)
    if not ok:
        raise RequestError(f"{name} must be a list of result ids (at most 1000)")
    return v


def _exclude(v):
    """``exclude``: a list of classes (names or indices) or an object {class name: share}; PhotoIndex.search checks
    the names and shares."""
    is_class = lambda c: isinstance(c, str) or (isinstance(c, int) and not isinstance(c, bool))
    is_share = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)
    if isinstance(v, list) and len(v) <= 1000 and all(is_class(c) for c in v):
        return v
    if isinstance(v, dict) and len(v) <= 1000 and all(is_share(x) for x in v.values()):
        return v
    raise RequestError(
        'exclude must be a list of classes ["car", "person"] or an object {"car": 0.01} (shares in (0, 1])'
    )


def _boxes(v) -> list[tuple[str, list[float]]]:
    if not isinstance(v, list) or len(v) > 1000:
        raise RequestError('draw must be a list (at most 1000) of {"class": NAME or INDEX, "box": [x0, y0, x1, y1]}')
    out = []
    for i, item in enumerate(v):
        if not isinstance(item, dict) or set(item) - {"class", "box"} or "class" not in item or "box" not in item:
            shape = '{"class": NAME or INDEX, "box": [x0, y0, x1, y1]}'
            raise RequestError(f"draw[{i}] must be {shape}; got {item!r:.80}")
        c, box = item["class"], item["box"]
        if isinstance(c, bool) or not isinstance(c, (str, int)) or (isinstance(c, int) and c < 0):
            raise RequestError(f"draw[{i}].class must be a class name or index; got {c!r:.40}")
        ok = isinstance(box, list) and len(box) == 4
        ok = ok and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in box)
        if not ok:
            raise RequestError(f"draw[{i}].box must be four numbers [x0, y0, x1, y1]; got {box!r:.80}")
        out.append((str(c), [float(x) for x in box]))
    return out


def _base64_png(v) -> bytes:
    if not isinstance(v, str):
        raise RequestError("sketch must be a base64 PNG (a data:image/png;base64, prefix is allowed)")
    if v.startswith("data:"):
        head, _, v = v.partition(",")
        if not head.endswith(";base64"):
            raise RequestError("sketch must be a base64 data URL (data:image/png;base64,...)")
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("sketch is not valid base64; send the PNG's bytes base64-encoded") from None


def _open(data: bytes, formats: tuple[str, ...], what: str, max_pixels: int, status: int) -> Image.Image:
    """An image from untrusted bytes: only ``formats``, at most ``max_pixels``, fully decoded here."""
    Image.init()  # every plugin registered, so the formats below are known
    try:
        im = Image.open(io.BytesIO(data), formats=[f for f in formats if f in Image.OPEN])
    except Image.DecompressionBombError:
        raise RequestError(f"the {what} has too many pixels to decode safely; send a smaller image", 422) from None
    except UnidentifiedImageError:
        kinds = ", ".join(formats[:-1]) + " or " + formats[-1] if len(formats) > 1 else formats[0]
        raise RequestError(f"the {what} is not an image of a known kind; send {kinds}", status) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise RequestError(f"cannot read the {what}: {e}", 422) from None
    w, h = im.size
    if w * h > max_pixels:
        raise RequestError(
            f"the {what} is {w}x{h} pixels, more than the {max_pixels:,} allowed; send a smaller image", 422
        )
    try:
        im.load()
    except Image.DecompressionBombError:
        raise RequestError(f"the {what} has too many pixels to decode safely; send a smaller image", 422) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise RequestError(f"cannot decode the {what}: {e}", 422) from None
    return im


def decode_photo(data: bytes) -> Image.Image:
    """An uploaded query photo, decoded and upright (EXIF orientation applied), RGB."""
    from ..network.orientation import upright

    if not data:
        raise RequestError("the image part is empty; send a photo file", 400)
    im = _open(data, PHOTO_FORMATS, "uploaded photo", MAX_PHOTO_PIXELS, 415)
    try:
        return upright(im).convert("RGB")
    except (OSError, ValueError, SyntaxError) as e:
        raise RequestError(f"cannot decode the uploaded photo: {e}", 422) from None


def decode_sketch(data: bytes) -> Image.Image:
    """A sketch PNG (single-channel label values or RGB(A) class colours), decoded."""
    if not data:
        raise RequestError("sketch is empty; send a PNG label map", 400)
    return _open(data, ("PNG",), "sketch", MAX_SKETCH_PIXELS, 422)
