"""Start the sketch tool on an index folder with the tests' fake network (no weights needed).

``python tests/gui_runner.py INDEX_DIR [K]``; tests/test_gui.py drives it with xdotool.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from photo_folder import FakeSegmenter
from segsearch import gui
from segsearch.library.photo_index import PhotoIndex


def main(argv) -> int:
    index_dir = argv[0]
    k = int(argv[1]) if len(argv) > 1 else 12
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    return gui.run(photo_index=pi, k=k)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
