"""Contact sheets: the query (photo and/or sketch, with a legend of the classes drawn) and the top results,
each with its rank, distance and a semi-transparent overlay of its labels decoded from the index."""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from ..network.palette import colorize

__all__ = ["contact_sheet", "not_shown_tile", "open_photo"]

BACKGROUND = (250, 250, 250)
INK = (20, 20, 20)
MUTED = (110, 110, 110)
PAD = 8
OVERLAY_ALPHA = 0.45


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


def open_photo(path, size: tuple[int, int] | None = None) -> Image.Image:
    """A photo file as RGB, EXIF orientation applied; with ``size``, decoded at a reduced scale towards it
    where the format allows (JPEG draft mode). Raises PIL's errors for unreadable files, and ValueError for a
    path that is not a regular file: it is opened without waiting (a FIFO would wait for a writer forever) and
    read only if it is a regular file. Read through a file object, so PIL never memory-maps it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f, Image.open(f) as im:
        if size is not None:
            im.draft("RGB", size)
        return ImageOps.exif_transpose(im).convert("RGB")


#: What a photo that cannot be decoded raises (a decompression bomb: a huge image in a small file).
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _open_or_none(path, size: tuple[int, int]) -> Image.Image | None:
    if path is None:
        return None
    try:
        return open_photo(path, size)
    except UNREADABLE:
        return None


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
    photo_index, hits: Sequence, *, image=None, sketch=None, text: str | None = None, thumb: int = 200, columns: int = 5
) -> Image.Image:
    """A PIL image: the query panel (photo, sketch over it or alone, legend, text) and the hits in a grid.

    ``photo_index``: the :class:`~segsearch.library.photo_index.PhotoIndex` searched; ``hits``: its results;
    ``image``: the query photo (path or PIL image); ``sketch``: the query label map (-1 = unspecified).
    Photos that cannot be read any more show as grey tiles; photos whose ids are refused (``hit.path`` None:
    outside the photos folder, or not a regular file) are never opened and show as grey "not shown" tiles.
    """
    palette, classes = photo_index.palette, photo_index.classes
    title_font, font = _font(16), _font(13)
    line = 18
    # ---- query panel
    photo = None
    if image is not None:
        photo = image.convert("RGB") if isinstance(image, Image.Image) else _open_or_none(image, (2 * thumb,) * 2)
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
    cell_w, cell_h = thumb + PAD, thumb + 2 * line + PAD
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
        im = _open_or_none(h.path, (thumb, thumb))
        if h.path is None:
            tile = not_shown_tile((thumb, thumb * 3 // 4))
        elif im is None:
            tile = Image.new("RGB", (thumb, thumb * 3 // 4), (200, 200, 200))
        else:
            tile = _fit(im, thumb)
            try:
                tile = _overlay(tile, photo_index.predicted_labels(h.id), palette)
            except ValueError:
                pass
        sheet.paste(tile, (cx, cy))
        dist = "" if math.isnan(h.distance) else f"  d={h.distance:.4g}"
        score = "" if h.text_score is None else f"  words={h.text_score}"
        d.text((cx, cy + tile.height + 2), f"#{h.rank}{dist}{score}", fill=INK, font=font)
        name = _printable(str(h.id))
        if len(name) > 30:
            name = "…" + name[-29:]
        d.text((cx, cy + tile.height + 2 + line), name, fill=MUTED, font=font)
    return sheet
