"""Draws docs/sketch-search.png: a sketch query and its top results on synthetic segmentation maps.

    pip install Pillow && python docs/make_figure.py

Each result is shown as its label map (the argmax of its class maps), coloured by class, with its rank and
PQ distance. Synthetic maps stand in for a real network's output here (no photos are redistributed).
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from segsearch import Index, Query
from segsearch.evaluation.synthetic import class_priors, synthetic_probs

NAMES = ["sky", "building", "road", "tree", "car", "person", "grass", "water"]
PALETTE = np.array(
    [
        [70, 130, 180],
        [140, 70, 60],
        [128, 64, 128],
        [60, 160, 60],
        [230, 160, 20],
        [220, 20, 60],
        [150, 220, 100],
        [40, 60, 200],
    ],
    np.uint8,
)
C, n, N, CELL = len(NAMES), 64, 3000, 160

probs = synthetic_probs(N, C, n, seed=3)
index = Index(C, n, 64, class_names=NAMES)
index.train(probs[:1000], seed=0)
index.add(probs)

# The sketch: two classes drawn as discs at the places where they usually appear in this data.
_, centres = class_priors(C)
labels = np.full((n, n), -1, np.int32)
yy, xx = np.mgrid[0:n, 0:n] / n
for c, r in ((0, 0.28), (2, 0.22)):
    labels[(yy - centres[c][0]) ** 2 + (xx - centres[c][1]) ** 2 < r * r] = c
res = index.search(Query.sketch(labels), k=6)


def tile(lab: np.ndarray) -> Image.Image:
    rgb = np.where(lab[..., None] >= 0, PALETTE[np.maximum(lab, 0)], 0).astype(np.uint8)
    return Image.fromarray(rgb).resize((CELL, CELL), Image.NEAREST)


sheet = Image.new("RGB", (CELL * 7 + 8 * 8, CELL + 60), "white")
draw = ImageDraw.Draw(sheet)
sheet.paste(tile(labels), (8, 30))
draw.text((8, 8), "sketch (black = unspecified)", fill="black")
draw.text((8, CELL + 36), ", ".join(NAMES[c] for c in np.unique(labels[labels >= 0])), fill="black")
for r, (i, d) in enumerate(zip(res.ids, res.distances)):
    x = 8 + (r + 1) * (CELL + 8)
    sheet.paste(tile(probs[i].argmax(0)), (x, 30))
    draw.text((x, 8), f"#{r + 1}  image {i}", fill="black")
    draw.text((x, CELL + 36), f"distance {d:.0f}", fill="black")
out = Path(__file__).parent / "sketch-search.png"
sheet.save(out)
print("wrote", out)
