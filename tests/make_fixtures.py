"""Writes tests/fixtures/NAME.segsearch and its expected results NAME.expect.npz, NAME being
v<FORMAT_VERSION> by default. Run once per new format version, or with a name for another variant of the
current version (keep the old files: they are what proves old indexes stay loadable; this never overwrites):

    python tests/make_fixtures.py                  # v<FORMAT_VERSION>
    python tests/make_fixtures.py v1-block-sums    # format 1 as saved since the row-run sums are stored
"""

import sys
from pathlib import Path

import numpy as np

from segsearch import Index, Query
from segsearch.engine import storage
from segsearch.evaluation.synthetic import synthetic_probs

here = Path(__file__).parent / "fixtures"
name = sys.argv[1] if len(sys.argv) > 1 else f"v{storage.FORMAT_VERSION}"
if (here / f"{name}.segsearch").exists() or (here / f"{name}.expect.npz").exists():
    sys.exit(f"{here / name}.* exists: fixtures are never rewritten; give another name")
probs = synthetic_probs(64, 5, 8, seed=21)
index = Index(
    5, 8, 16, class_names=["sky", "building", "road", "tree", "car"], keep_exact=True, metadata={"network": "synthetic"}
)
index.train(probs, niter=5, seed=0)
index.add(probs, ids=[f"img_{i:03d}.jpg" for i in range(64)])
index.save(here / f"{name}.segsearch")
sketch = np.full((8, 8), -1, np.int32)
sketch[:3] = 0
sketch[6:] = 2
r = index.search(Query.image(probs[9]), k=10, eps=0)
s = index.search(Query.sketch(sketch), k=10)
np.savez(here / f"{name}.expect.npz", query=probs[9], ids=r.ids, distances=r.distances, sketch=sketch, sketch_ids=s.ids)
print("wrote", here / f"{name}.segsearch")
