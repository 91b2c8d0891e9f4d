"""The ``segsearch`` command line.

``segsearch index PHOTOS_DIR --out INDEX_DIR`` builds (or resumes, or with ``--add`` extends) an index of a
folder of photos; see :mod:`segsearch.indexing`. Bad input prints one line ``segsearch: error: ...`` on
stderr and exits with status 2; an interrupted run exits with 130 and resumes when run again.
"""
from __future__ import annotations

import argparse
import sqlite3
import sys

from .errors import SegsearchError

#: How many failed photos the summary names.
SHOW_FAILED = 5


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segsearch", description="Spatial-semantic image search.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("index", help="index a folder of photos (resumable)",
                       description="Segment every photo under PHOTOS_DIR, train the codebooks on a sample and "
                                   "write INDEX_DIR/index.segsearch. Interrupt at any time; the same command "
                                   "resumes where it stopped.")
    p.add_argument("photos_dir", metavar="PHOTOS_DIR", help="folder searched recursively for .jpg/.jpeg/.png/.webp/.bmp")
    p.add_argument("--out", required=True, metavar="INDEX_DIR", help="index folder (created if missing)")
    p.add_argument("--size", type=_positive, default=None, help="map size n (default 64)")
    p.add_argument("--centroids", type=_positive, default=None,
                   help="centroids K per class, 1..256 (default 256; lowered to the number of readable sample "
                        "photos if larger)")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if available)")
    p.add_argument("--weights", default=None, help="network weights (.tflite or imported .safetensors)")
    p.add_argument("--batch", type=_positive, default=8, help="photos per batch (default 8)")
    p.add_argument("--sample", type=_positive, default=2000, help="photos to train the codebooks on (default 2000)")
    p.add_argument("--add", action="store_true", help="append new photos to an existing index with its codebook")
    p.add_argument("--captions", default=None, metavar="FILE",
                   help="COCO captions .json or a CSV with header path,caption; stored in INDEX_DIR/captions.sqlite")
    p.set_defaults(func=_cmd_index)
    return parser


def _cmd_index(args) -> int:
    from .indexing import build_index

    report = build_index(args.photos_dir, args.out, size=args.size, n_centroids=args.centroids,
                         device=args.device, weights=args.weights, batch=args.batch, sample=args.sample,
                         add=args.add, captions=args.captions)
    print(f"indexed {report.n_done} photos ({report.n_new} new, K={report.n_centroids}) into {report.index_path}")
    if report.failed:
        names = ", ".join(f"{p} ({e})" for p, e in report.failed[:SHOW_FAILED])
        more = f" and {len(report.failed) - SHOW_FAILED} more" if len(report.failed) > SHOW_FAILED else ""
        n = len(report.failed)
        print(f"{n} photo{'s' if n != 1 else ''} could not be read and {'were' if n != 1 else 'was'} skipped: "
              f"{names}{more}")
    if args.captions is not None:
        print(f"stored {report.n_captions} captions")
    return 0


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("segsearch: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (ValueError, SegsearchError, FileNotFoundError, OSError, sqlite3.Error) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"segsearch: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
