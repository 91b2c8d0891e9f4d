"""Contact sheets: the query (photo and/or sketch, with a legend of the classes drawn) and the top results,
each with its rank, distance and name, and its labels decoded from the index drawn over it (by default as
outlines, so the photo stays visible: :data:`OVERLAYS`)."""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from ..network.orientation import open_image, upright
from ..network.palette import colorize

__all__ = ["OVERLAYS", "UNREADABLE", "contact_sheet", "not_shown_tile", "open_photo", "unreadable_reason"]

BACKGROUND = (250, 250, 250)
INK = (20, 20, 20)
MUTED = (110, 110, 110)
PAD = 8
OVERLAY_ALPHA = 0.45
#: How a result's labels are drawn over it: the class boundaries in the class colours (the default), the whole
#: label map blended at a third, or nothing.
OVERLAYS = ("outline", "translucent", "none")


#: How many classes of a result's distance the sheet shows under its tile with ``explain=True``.
EXPLAIN_TOP = 3


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _fit(im: Image.Image, box: int) -> Image.Image:
    """Scaled (up or down) to fit a box x box square, aspect ratio kept."""
    return ImageOps.contain(im.convert("RGB"), (box, box), Image.BILINEAR)


def _overlay(photo: Image.Image, labels: np.ndarray, palette: np.ndarray, alpha: float = OVERLAY_ALPHA) -> Image.Image:
    """``photo`` with the label map (resized nearest to the photo) blended over it."""
    colours = Image.fromarray(colorize(labels, palette)).resize(photo.size, Image.NEAREST)
    mask = np.asarray(labels) >= 0  # unspecified sketch pixels stay clear
    m = Image.fromarray((mask * int(round(alpha * 255))).astype(np.uint8)).resize(photo.size, Image.NEAREST)
    return Image.composite(colours, photo, m)


def _outline(photo: Image.Image, labels: np.ndarray, palette: np.ndarray) -> Image.Image:
    """``photo`` with the boundaries of the label map (resized nearest to the photo), two pixels wide, drawn in
    the colour of the class on each side; the photo shows everywhere else."""
    lab = np.asarray(Image.fromarray(np.asarray(labels, np.int32)).resize(photo.size, Image.NEAREST))
    edge = np.zeros(lab.shape, bool)
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    edge[1:, :] |= lab[1:, :] != lab[:-1, :]
    edge[:, :-1] |= edge[:, 1:].copy()  # two pixels wide: the pixel on each side of the boundary
    edge[:-1, :] |= edge[1:, :].copy()
    edge &= lab >= 0
    out = np.array(photo)
    out[edge] = colorize(lab, palette)[edge]
    return Image.fromarray(out)


def _labelled(tile: Image.Image, labels: np.ndarray, palette: np.ndarray, overlay: str) -> Image.Image:
    if overlay == "outline":
        return _outline(tile, labels, palette)
    if overlay == "translucent":
        return _overlay(tile, labels, palette, alpha=1 / 3)
    return tile


def _elide(d: ImageDraw.ImageDraw, text: str, font, width: int, middle: bool = False) -> str:
    """``text`` cut to fit ``width`` pixels with "…" (in the middle: a file name keeps its start and end)."""
    if d.textlength(text, font=font) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the most characters that fit
        n = (lo + hi + 1) // 2
        cut = text[: n - n // 2] + "…" + text[len(text) - n // 2 :] if middle else text[:n] + "…"
        lo, hi = (n, hi) if d.textlength(cut, font=font) <= width else (lo, n - 1)
    return text[: lo - lo // 2] + "…" + text[len(text) - lo // 2 :] if middle else text[:lo] + "…"


def open_photo(path, size: tuple[int, int] | None = None, *, mode: str | None = "RGB") -> Image.Image:
    """A photo file in ``mode`` (None: the file's own, e.g. a sketch PNG's label values), EXIF orientation
    applied; with ``size``, decoded at a reduced scale towards it where the format allows (JPEG draft mode).
    Raises PIL's errors for unreadable files (:data:`UNREADABLE`; :func:`unreadable_reason` words them), and
    ValueError for a path that is not a regular file: it is opened without waiting (a FIFO would wait for a
    writer forever) and read only if it is a regular file. Read through a file object, so PIL never memory-maps
    it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f, open_image(f) as im:
        if size is not None and mode is not None:
            im.draft(mode, size)
        out = upright(im)  # a loaded copy: the file can close
        return out if mode is None else out.convert(mode)


#: What a photo that cannot be decoded raises (a decompression bomb: a huge image in a small file).
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def unreadable_reason(error: BaseException) -> str:
    """Why :func:`open_photo` could not open a file, in words for the person who picked it (no file objects or
    error numbers): e.g. "it is not an image Pillow can read"."""
    if isinstance(error, Image.DecompressionBombError):
        return "it is too large an image to open safely"
    if isinstance(error, FileNotFoundError):
        return "it does not exist"
    if isinstance(error, IsADirectoryError):
        return "it is a folder"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, UnidentifiedImageError):
        return "it is not an image Pillow can read"
    if isinstance(error, ValueError) and "not a regular file" in str(error):
        return "it is not a regular file"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[:1].lower() + error.strerror[1:]
    detail = str(error).strip()  # PIL's own words for a damaged file, e.g. "image file is truncated"
    return f"the image is damaged ({detail})" if detail else "the image is damaged"


def _open(path, size: tuple[int, int]) -> tuple[Image.Image | None, str | None]:
    """(the photo, None), or (None, why it is not shown): "missing" (no file there any more) or "unreadable"."""
    if path is None:
        return None, "not shown"
    try:
        return open_photo(path, size), None
    except FileNotFoundError:
        return None, "missing"
    except UNREADABLE:
        return None, "unreadable"


def not_shown_tile(size: tuple[int, int], text: str = "not shown") -> Image.Image:
    """A grey tile saying ``text``: the place of a photo that was not opened (its id is refused: outside the
    photos folder, or not a regular file)."""
    tile = Image.new("RGB", size, (200, 200, 200))
    d = ImageDraw.Draw(tile)
    font = _font(max(9, min(size) // 8))
    box = d.textbbox((0, 0), text, font=font)
    d.text(((size[0] - box[2]) // 2, (size[1] - box[3]) // 2), text, fill=MUTED, font=font)
    return tile


def _printable(name: str) -> str:
    """``name`` with control characters shown as '?' (ids come from the index file)."""
    return "".join(c if c.isprintable() else "?" for c in name)


def contact_sheet(
    photo_index,
    hits: Sequence,
    *,
    image=None,
    sketch=None,
    text: str | None = None,
    thumb: int = 200,
    columns: int = 5,
    overlay: str = "outline",
    report=None,
    explain: bool = False,
) -> Image.Image:
    """A PIL image: the query panel (photo, sketch over it or alone, legend, text) and the hits in a grid.

    ``photo_index``: the :class:`~segsearch.library.photo_index.PhotoIndex` searched; ``hits``: its results;
    ``image``: the query photo (path or PIL image); ``sketch``: the query label map (-1 = unspecified).
    ``overlay``: how each result's decoded labels are drawn over it (:data:`OVERLAYS`: ``"outline"``, the
    default, ``"translucent"`` or ``"none"``). Names longer than a cell are shortened in the middle with "…".
    A photo deleted or damaged since indexing is a grey tile that says "missing" or "unreadable", and photos
    whose ids are refused (``hit.path`` None: outside the photos folder, or not a regular file) are never opened
    and say "not shown"; ``report(hit, why)`` is called for each such hit (the CLI notes them on stderr).
    ``explain=True``: under each tile, the :data:`EXPLAIN_TOP` classes with the largest parts of its distance
    (hits of a search with ``explain=True``), each with its colour, its part and that part's share of the distance.
    """
    if overlay not in OVERLAYS:
        raise ValueError(f"overlay must be one of {', '.join(OVERLAYS)}; got {overlay!r}")
    palette, classes = photo_index.palette, photo_index.classes
    title_font, font = _font(16), _font(13)
    line = 18
    # ---- query panel
    photo = None
    if image is not None:
        photo = image.convert("RGB") if isinstance(image, Image.Image) else _open(image, (2 * thumb,) * 2)[0]
    lab = None if sketch is None else np.asarray(sketch)
    if photo is not None:
        q = _fit(photo, thumb * 2)
        if lab is not None:
            q = _overlay(q, lab, palette, alpha=0.6)
    elif lab is not None:
        side = thumb * 2
        q = Image.fromarray(colorize(lab, palette, unspecified=(255, 255, 255))).resize((side, side), Image.NEAREST)
    else:
        q = None
    drawn = [] if lab is None else [int(c) for c in np.unique(lab) if c >= 0]
    legend_h = line * (len(drawn) + (1 if text else 0)) + (line if q is not None else 0)
    q_w = q.width if q is not None else thumb * 2
    q_h = (q.height if q is not None else 0) + legend_h + line
    # ---- results grid
    cols = max(1, min(columns, len(hits))) if hits else 1
    rows = math.ceil(len(hits) / cols) if hits else 0
    cell_w, cell_h = thumb + PAD, thumb + (2 + (EXPLAIN_TOP if explain else 0)) * line + PAD
    grid_w = cols * cell_w
    width = PAD + q_w + 2 * PAD + grid_w + PAD
    height = max(q_h, rows * cell_h + line) + 2 * PAD
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(sheet)
    x, y = PAD, PAD
    d.text((x, y), "query", fill=INK, font=title_font)
    y += line
    if q is not None:
        sheet.paste(q, (x, y))
        d.rectangle([x, y, x + q.width - 1, y + q.height - 1], outline=MUTED)
        y += q.height + 4
    for c in drawn:
        d.rectangle([x, y + 2, x + 12, y + 14], fill=tuple(int(v) for v in palette[c]), outline=MUTED)
        d.text((x + 18, y), f"{classes[c]}", fill=INK, font=font)
        y += line
    if text:
        d.text((x, y), f'text: "{text}"', fill=INK, font=font)
    # ---- hits
    gx = PAD + q_w + 2 * PAD
    d.text((gx, PAD), f"top {len(hits)}" if hits else "no results", fill=INK, font=title_font)
    for i, h in enumerate(hits):
        cx, cy = gx + (i % cols) * cell_w, PAD + line + (i // cols) * cell_h
        im, why = _open(h.path, (thumb, thumb))
        if im is None:
            tile = not_shown_tile((thumb, thumb * 3 // 4), why)
            if report is not None:
                report(h, why)
        else:
            tile = _fit(im, thumb)
            if overlay != "none":
                try:
                    tile = _labelled(tile, photo_index.predicted_labels(h.id), palette, overlay)
                except ValueError:
                    pass
        sheet.paste(tile, (cx, cy))
        dist = "" if math.isnan(h.distance) else f"  d={h.distance:.4g}"
        score = "" if h.text_score is None else f"  words={h.text_score}"
        d.text((cx, cy + tile.height + 2), _elide(d, f"#{h.rank}{dist}{score}", font, thumb), fill=INK, font=font)
        name = _elide(d, _printable(str(h.id)), font, thumb, middle=True)
        d.text((cx, cy + tile.height + 2 + line), name, fill=MUTED, font=font)
        if explain and h.explain:
            for j, part in enumerate(h.explain[:EXPLAIN_TOP]):
                ty = cy + tile.height + 2 + (2 + j) * line
                colour = tuple(int(v) for v in palette[part.index])
                d.rectangle([cx, ty + 2, cx + 12, ty + 14], fill=colour, outline=MUTED)
                share = f" ({part.part / h.distance:.0%})" if h.distance > 0 else ""
                label = f"{_printable(part.name)} {part.part:.4g}{share}"
                d.text((cx + 18, ty), _elide(d, label, font, thumb - 18), fill=INK, font=font)
    return sheet
