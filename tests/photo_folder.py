"""A tiny index folder for API, CLI and GUI tests: synthetic photos, an index, captions, a fake network.

The fake segmenter turns a photo's pixels into softmax maps with a fixed random projection, so photo
queries are deterministic and need no real network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import segsearch
from segsearch.library.captions import write_captions

CLASSES = ["others", "sky", "tree", "road", "car", "person", "building", "water"]
SIZE = 16
N_PHOTOS = 40
WORDS = ["car", "cars", "road", "sky", "tree", "trees", "person", "dog", "house", "boats", "water"]


class FakeSegmenter:
    """``predict(images, size)``: softmax of a fixed linear map of each pixel's RGB (deterministic)."""

    def __init__(self, classes=CLASSES, seed: int = 0):
        self.classes = list(classes)
        rng = np.random.default_rng(seed)
        self.w = rng.normal(0, 4, (len(self.classes), 3)).astype(np.float32)
        self.b = rng.normal(0, 1, (len(self.classes), 1, 1)).astype(np.float32)
        self.calls = 0

    def predict(self, images, size=64, **kwargs):
        self.calls += 1
        out = []
        for im in images:
            im = (
                im
                if isinstance(im, Image.Image)
                else (Image.fromarray(np.asarray(im, np.uint8)) if not isinstance(im, (str, Path)) else Image.open(im))
            )
            rgb = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), np.float32) / 255.0
            logits = np.einsum("ck,hwk->chw", self.w, rgb) + self.b
            e = np.exp(logits - logits.max(0, keepdims=True))
            out.append(e / e.sum(0, keepdims=True))
        return np.stack(out).astype(np.float32)


def pixel_net():
    """A fixed 1x1-conv 'network' with 5 classes (class name ``PixelNet``): fast, deterministic, no weights file;
    wrap it with ``Segmenter.from_module(pixel_net(), list("abcde"), device="cpu", input_size=16)``."""
    import torch

    class PixelNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 5, 1)

        def forward(self, x):
            return self.conv(x) * 4

    return PixelNet()


def make_photos(folder: Path, n: int = N_PHOTOS, seed: int = 1) -> list[str]:
    """n small PNG photos of random colour blocks; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        im = Image.fromarray(blocks).resize((64, 48), Image.NEAREST)
        name = f"photo{i:03d}.png"
        im.save(folder / name)
        names.append(name)
    return names


def make_index_folder(root: Path, *, captions: bool = True, segmenter=None, k: int = 16):
    """root/photos (PNG photos), root/index (index.segsearch + captions.sqlite); returns (index_dir, photos_dir,
    names, captions dict name -> list of captions)."""
    seg = segmenter or FakeSegmenter()
    photos, index_dir = root / "photos", root / "index"
    names = make_photos(photos)
    maps = seg.predict([photos / n for n in names], size=SIZE)
    index = segsearch.Index(
        len(seg.classes), SIZE, k, class_names=seg.classes, metadata={"photos_dir": str(photos), "network": "fake"}
    )
    index.train(maps, niter=5)
    index.add(maps, ids=names)
    index_dir.mkdir(parents=True)
    index.save(index_dir / "index.segsearch")
    caps: dict[str, list[str]] = {}
    if captions:
        rng = np.random.default_rng(2)
        for name in names[: N_PHOTOS * 3 // 4]:  # a quarter of the photos have no caption
            caps[name] = [" ".join(rng.choice(WORDS, size=rng.integers(1, 4))) + "." for _ in range(2)]
        write_captions([(n, c) for n, cs in caps.items() for c in cs], index_dir / "captions.sqlite")
    return index_dir, photos, names, caps


def make_sharded_copy(index_dir: Path, out: Path, cuts=(15, 30)) -> Path:
    """A copy of an index folder whose photos are split at ``cuts`` into a base index.segsearch and shards
    (as ``segsearch index --add`` would write them, with the same codebook); returns the new folder."""
    import shutil

    from segsearch.engine.index import empty_like
    from segsearch.library.shards import add_shard

    shutil.copytree(index_dir, out)
    whole = segsearch.Index.load(index_dir / "index.segsearch", mmap=False)
    bounds = [0, *cuts, len(whole)]
    base = empty_like(whole).add_codes(whole.codes[: cuts[0]], ids=list(whole.ids[: cuts[0]]))
    base.save(out / "index.segsearch")
    for lo, hi in zip(bounds[1:], bounds[2:]):
        add_shard(out, empty_like(whole).add_codes(whole.codes[lo:hi], ids=list(whole.ids[lo:hi])))
    return out


class DyingSegmenter:
    """A segmenter whose process dies (``os._exit``, as a kill or the OOM killer would end it) on its first
    ``times`` batches runs, counted in the file ``counter`` (shared by the restarted processes); then it runs
    ``inner``. For the Ray tests: the actor holding it is killed mid-run."""

    def __init__(self, inner, counter: Path, times: int = 1):
        self.inner, self.counter, self.times = inner, Path(counter), times
        self.classes, self.name = inner.classes, inner.name
        self.weights_sha256 = getattr(inner, "weights_sha256", None)

    def deaths(self) -> int:
        return len(self.counter.read_bytes()) if self.counter.exists() else 0

    def iter_predict(self, paths, **kwargs):
        import os

        if self.times < 0 or self.deaths() < self.times:
            with open(self.counter, "ab") as f:
                f.write(b"x")
            os._exit(1)
        yield from self.inner.iter_predict(paths, **kwargs)
