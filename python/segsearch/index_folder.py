"""The files of an index folder, named in one place for the writer (:mod:`segsearch.indexing`) and the readers
(:mod:`segsearch.photo_index`, the CLI, the sketch tool)::

    INDEX_DIR/index.segsearch          the index: codebook, codes, ids (photo paths relative to the photos folder)
    INDEX_DIR/captions.sqlite          optional: the photos' captions
    INDEX_DIR/work/state.sqlite        indexing progress and each photo's codes (kept for resume and --add)
    INDEX_DIR/work/sample.f16          while indexing: float16 maps of the codebook's training sample
    INDEX_DIR/work/codebook.segsearch  while indexing: the trained codebook (an index of no photos)

Once indexing finishes only ``index.segsearch``, ``captions.sqlite`` and the small ``work/state.sqlite`` stay.
"""
from __future__ import annotations

INDEX_FILE = "index.segsearch"
CAPTIONS_FILE = "captions.sqlite"
WORK_DIR = "work"
STATE_FILE = "state.sqlite"
SAMPLE_FILE = "sample.f16"
CODEBOOK_FILE = "codebook.segsearch"
#: Metadata keys an index made by ``segsearch index`` carries.
META_NETWORK, META_NETWORK_SHA256, META_PHOTOS_DIR, META_SIZE = "network", "network_sha256", "photos_dir", "size"
