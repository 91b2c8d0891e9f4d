"""Distances on real layouts: CamVid ground-truth label maps (../shared) turned into soft class maps."""

from pathlib import Path

import numpy as np
import pytest

from reference import adc_maps, distances, exact_maps, topk
from segsearch import Index, Query

CAMVID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camvid"
C, N_SIZE = 12, 32  # 11 classes + void


def soft_maps(paths, size=N_SIZE):
    """Area-averaged one-hot label maps: per pixel the fraction of each class, as a softmax-like map."""
    from PIL import Image

    out = np.empty((len(paths), C, size, size), np.float32)
    for i, p in enumerate(paths):
        lab = np.asarray(Image.open(p))
        lab = np.minimum(lab, C - 1)
        h, w = lab.shape
        rows = (np.arange(h) * size // h)[:, None]
        cols = (np.arange(w) * size // w)[None, :]
        cell = rows * size + cols
        counts = np.zeros((C, size * size))
        np.add.at(counts, (lab.reshape(-1), cell.reshape(-1)), 1)
        out[i] = (counts / counts.sum(0, keepdims=True)).reshape(C, size, size)
    return out


@pytest.fixture(scope="module")
def camvid():
    if not CAMVID.exists():
        pytest.skip(f"{CAMVID} not found (the shared data folder)")
    train = sorted((CAMVID / "train" / "labels").glob("*.png"))[::3]
    val = sorted((CAMVID / "val" / "labels").glob("*.png"))[::10]
    db, queries = soft_maps(train), soft_maps(val)
    index = Index(C, N_SIZE, 32, keep_exact=True)
    index.train(db, niter=10)
    index.add(db)
    return db, queries, index


def test_real_layouts_match_numpy(camvid):
    db, queries, index = camvid
    rec = adc_maps(np.asarray(index.codebook), np.asarray(index.codes))
    ex = exact_maps(db, index)
    for q in queries[:4]:
        lab = q.argmax(0).astype(np.int32)
        partial = np.where(np.arange(N_SIZE)[:, None] < N_SIZE // 3, lab, -1).astype(np.int32)
        cases = [
            ("image", Query.image(q), q, None),
            ("sketch", Query.sketch(lab), None, lab),
            ("image_and_sketch", Query.image_and_sketch(q, partial), q, partial),
        ]
        for kind, query, p, labels in cases:
            for exact, maps in ((False, rec), (True, ex)):
                ref = distances(kind, p, labels, maps, index)
                res = index.search(query, k=len(db), exact=exact, eps=0, rerank=0)
                atol = 1e-4 * np.median(np.abs(ref))
                np.testing.assert_allclose(res.distances, ref[topk(ref, len(db))], rtol=1e-4, atol=atol)
                # and each distance is the reference's for the photo returned with it (positions are the ids)
                assert sorted(res.ids.tolist()) == list(range(len(db)))
                np.testing.assert_allclose(res.distances, ref[res.ids], rtol=1e-4, atol=atol)


def test_a_photo_finds_its_own_layout_first(camvid):
    db, _, index = camvid
    for i in (0, 30, 77):
        assert index.search(Query.image(db[i]), k=1, exact=True).ids[0] == i
        assert index.search(Query.sketch(db[i].argmax(0)), k=1, exact=True).ids[0] == i
