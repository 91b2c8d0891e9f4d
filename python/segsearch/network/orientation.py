"""A photo turned upright by its EXIF orientation tag, where that tag can be read: EXIF is untrusted input, and a
malformed block must not make a readable photo unreadable (nor print Pillow's "Corrupt EXIF data" warnings: the
metadata pass counts such photos, see :mod:`segsearch.library.exif`)."""

from __future__ import annotations

import warnings

from PIL import Image, ImageOps

__all__ = ["open_image", "upright"]


def open_image(fp) -> Image.Image:
    """``Image.open(fp)`` (lazy: the header only) without Pillow's warnings about a malformed EXIF block, which a
    JPEG's header reads for its resolution."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return Image.open(fp)


def upright(im: Image.Image) -> Image.Image:
    """``ImageOps.exif_transpose(im)``; ``im`` as it is where its EXIF cannot be parsed (random bytes, a TIFF
    header that is not one, an IFD past the end of the block). A photo whose pixels cannot be decoded still fails
    when they are read."""
    try:
        with warnings.catch_warnings():  # Pillow warns "Corrupt EXIF data" on a bad block: the photo is still read
            warnings.simplefilter("ignore", UserWarning)
            return ImageOps.exif_transpose(im)
    except Exception:  # any parser error: the orientation is unknown, the pixels may be fine
        return im
