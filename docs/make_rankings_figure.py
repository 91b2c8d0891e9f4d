"""Draws docs/rankings.png: the same photo queries on COCO-MINI ranked by the paper's L2 and by the default
"balanced" ranking, each photo shown as the network's label map (argmax of its class maps, coloured by class;
no photos are redistributed).

    pip install -e ".[bench]" && python docs/make_rankings_figure.py

Needs ../shared (the COCO-MINI photos) and the network's maps of them, which bench/maps_cache.py computes once
and caches in bench/.cache. Each of the 80 photos queries the other 79 (exact search, as bench/quality.py); the
photos in at least HUB_LISTS of the 80 top-10 lists under L2 (its hubs) are framed in red wherever they appear.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import maps_cache  # noqa: E402
from segsearch import Index, Query  # noqa: E402
from segsearch.network.palette import colorize, make_palette  # noqa: E402

QUERIES = ("000000252639", "000000466547", "000000084284")  # a bus on a road, a bus by a church, a laptop on a desk
TOP, CELL, PAD, HUB_LISTS = 6, 112, 6, 20
paths, root = maps_cache.coco_photos()
maps = maps_cache.network_maps(paths, root, tag="coco-mini").astype(np.float32)
maps /= maps.sum(1, keepdims=True)
names = [p.stem for p in paths]
N, C = maps.shape[:2]
rankings = ("l2", "balanced")
indexes = {r: Index(C, maps.shape[-1], 1, keep_exact=True, ranking=r).train(maps).add(maps) for r in rankings}


def top10(r: str, q: int) -> np.ndarray:
    others = np.array([i for i in range(N) if i != q])
    return indexes[r].search(Query.image(maps[q]), k=10, exact=True, subset=others).ids


lists = {r: [top10(r, q) for q in range(N)] for r in rankings}
counts = {r: np.bincount(np.concatenate(lists[r]), minlength=N) for r in rankings}
hubs = set(np.flatnonzero(counts["l2"] >= HUB_LISTS).tolist())
palette = make_palette(C)


def tile(i: int, framed: bool) -> Image.Image:
    im = Image.fromarray(colorize(maps[i].argmax(0), palette)).resize((CELL, CELL), Image.NEAREST)
    if framed:
        ImageDraw.Draw(im).rectangle([0, 0, CELL - 1, CELL - 1], outline=(230, 0, 0), width=5)
    return im


rows = [(q, r) for q in QUERIES for r in rankings]
W = PAD + (CELL + PAD) * (TOP + 1) + 70
H = 44 + len(rows) * (CELL + 26)
sheet = Image.new("RGB", (W, H), "white")
draw = ImageDraw.Draw(sheet)
in_lists = ", ".join(
    f"{counts['l2'][h]} -> {counts['balanced'][h]}" for h in sorted(hubs, key=lambda h: -counts["l2"][h])
)
draw.text(
    (PAD, 4),
    f"COCO-MINI photo queries, each photo shown as its label map. Red frame: the {len(hubs)} photos in >= "
    f"{HUB_LISTS} of the {N} top-10 lists under l2;",
    fill="black",
)
draw.text((PAD, 16), f"their number of lists, l2 -> balanced: {in_lists}.", fill="black")
y = 40
for q, r in rows:
    qi = names.index(q)
    draw.text((PAD, y), f"query {q}" if r == "l2" else "", fill="black")
    sheet.paste(tile(qi, False), (PAD, y + 14))
    for rank, i in enumerate(lists[r][qi][:TOP]):
        sheet.paste(tile(int(i), int(i) in hubs), (PAD + (rank + 1) * (CELL + PAD), y + 14))
    draw.text((PAD + (TOP + 1) * (CELL + PAD), y + 14 + CELL // 2), r, fill="black")
    y += CELL + 26
out = Path(__file__).parent / "rankings.png"
sheet.save(out)
print(
    "wrote",
    out,
    "| hubs (l2 lists -> balanced lists):",
    in_lists,
    "| worst: l2",
    int(counts["l2"].max()),
    "balanced",
    int(counts["balanced"].max()),
)
