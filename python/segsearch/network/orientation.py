"""A photo turned upright by its EXIF orientation tag, where that tag can be read: EXIF is untrusted input, and a
malformed block must not make a readable photo unreadable."""

from __future__ import annotations

from PIL import Image, ImageOps

__all__ = ["upright"]


def upright(im: Image.Image) -> Image.Image:
    """``ImageOps.exif_transpose(im)``; ``im`` as it is where its EXIF cannot be parsed (random bytes, a TIFF
    header that is not one, an IFD past the end of the block). A photo whose pixels cannot be decoded still fails
    when they are read."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # any parser error: the orientation is unknown, the pixels may be fine
        return im
