"""Make docs/gui.png: the sketch tool on synthetic photos (no real data, no network weights).

Run on an X display, e.g. ``xvfb-run -s "-screen 0 1280x1024x24" python docs/make_gui_screenshot.py``.
The photos are synthetic scenes (label maps from :mod:`segsearch.evaluation.synthetic` painted in natural colours with
noise), 4:3 like most camera photos and named like a camera's files; a colour-matching stand-in for the
network segments them, so searches behave sensibly.
"""

from __future__ import annotations

import sys
import tempfile
import time
import tkinter as tk
from pathlib import Path

import numpy as np
from PIL import Image, ImageGrab

import segsearch
from segsearch.evaluation.synthetic import synthetic_probs
from segsearch.gui import SketchApp
from segsearch.library.photo_index import PhotoIndex

CLASSES = ["others", "sky", "tree", "road", "grass", "building", "water", "sand", "car", "person"]
COLOURS = np.array(
    [
        (60, 60, 60),
        (120, 170, 235),
        (40, 110, 45),
        (120, 120, 125),
        (110, 190, 80),
        (170, 120, 95),
        (40, 90, 170),
        (225, 205, 150),
        (200, 40, 40),
        (240, 180, 150),
    ],
    np.float32,
)
N_PHOTOS, SIZE = 80, 16


class ColourSegmenter:
    """Softmax over classes of the negative squared distance of each pixel to the class's natural colour."""

    classes = CLASSES

    def predict(self, images, size=64, **kwargs):
        out = []
        for im in images:
            im = im if isinstance(im, Image.Image) else Image.open(im)
            rgb = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), np.float32)
            d = ((rgb[None] - COLOURS[:, None, None]) ** 2).sum(-1) / 800.0
            e = np.exp(-(d - d.min(0, keepdims=True)))
            out.append(e / e.sum(0, keepdims=True))
        return np.stack(out).astype(np.float32)


def make_folder(root: Path) -> PhotoIndex:
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(7)
    labels = synthetic_probs(N_PHOTOS, len(CLASSES), 24, seed=3).argmax(1)
    names = []
    for i, lab in enumerate(labels):
        rgb = COLOURS[lab] + rng.normal(0, 12, lab.shape + (3,))
        im = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).resize((128, 96), Image.BILINEAR)
        names.append(f"IMG_20240612_{101500 + 37 * i:06d}.png")
        im.save(photos / names[-1])
    seg = ColourSegmenter()
    maps = seg.predict([photos / n for n in names], size=SIZE)
    index = segsearch.Index(len(CLASSES), SIZE, 32, class_names=CLASSES, metadata={"photos_dir": str(photos)})
    index.train(maps, niter=10)
    index.add(maps, ids=names)
    (root / "index").mkdir()
    index.save(root / "index" / "index.segsearch")
    return PhotoIndex.open(root / "index", segmenter=seg)


def wait(app: SketchApp, n: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (app.search_count <= n or app.pending):
        app.master.update()
        time.sleep(0.01)


def main(out: str = "docs/gui.png") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pi = make_folder(Path(tmp))
        root = tk.Tk()
        app = SketchApp(root, pi, k=12)
        root.update()
        # sky on top, road at the bottom: search; pick the 2nd result; paint a car over it; search again
        app.select_class("sky")
        app.set_brush(30)
        app.sketch.stroke([(20, 30), (236, 30)], CLASSES.index("sky"), 30)
        app.sketch.stroke([(20, 225), (236, 225)], CLASSES.index("road"), 28)
        app.sketch_changed()
        wait(app, 0)
        app.use_result(1)
        wait(app, 1)
        app.select_class("car")
        app.set_brush(12)
        app.sketch.stroke([(90, 170), (150, 170)], CLASSES.index("car"), 14)
        app.sketch_changed()
        wait(app, 2)
        app.exclude_class(CLASSES.index("building"))  # Refine: leave out the photos with a building
        wait(app, 3)
        root.update()
        x, y = root.winfo_rootx(), root.winfo_rooty()
        w, h = root.winfo_width(), root.winfo_height()
        shot = ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=root.winfo_screen())
        shot.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
        app.close()
    print(f"wrote {out} ({Path(out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(*sys.argv[1:])
