"""The ``segsearch`` command line.

``segsearch index PHOTOS_DIR --out INDEX_DIR`` builds (or resumes, or with ``--add`` extends) an index of a
folder of photos (see :mod:`segsearch.library.build`); ``segsearch search INDEX_DIR ...`` ranks it by photo,
sketch and/or caption words (see :mod:`segsearch.library.photo_index`); ``segsearch classes INDEX_DIR`` lists its
classes; ``segsearch compact INDEX_DIR`` merges the shards ``--add`` wrote; ``segsearch metadata INDEX_DIR`` adds
the photos' dates, cameras and folders (for ``search --after/--before/--folder/--camera``) to a folder without
them; ``segsearch serve INDEX_DIR`` serves the web app and HTTP API (see :mod:`segsearch.serve`). Bad input
prints one line ``segsearch: error: ...`` on stderr and exits with status 2; an interrupted run exits with 130 and
resumes when run again.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import json
import math
import os
import sqlite3
import sys
import threading
from pathlib import Path

from .errors import OptionError, SegsearchError

#: The flag of each library option whose name differs (BuildOptions, PhotoIndex.search): errors name the flag.
FLAGS = {
    "n_centroids": "--centroids",
    "ray_actors": "--ray-actors",
    "ray_threads": "--ray-threads",
    "add": "--add",
    "photos_dir": "--photos",
    "max_photos": "--max-photos",
}

#: How many failed photos the summary names.
SHOW_FAILED = 5


def _positive(text: str) -> int:
    """argparse's type for counts: a whole number >= 1 (:func:`~segsearch.engine.checks.check_count`)."""
    from .engine.checks import check_count

    try:
        return check_count(int(text), "it")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None


def _count(text: str) -> int:
    """argparse's type for counts that may be 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _ray_options(p: argparse.ArgumentParser, what: str, *, indexing: bool = False) -> None:
    p.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        default=None,
        metavar="ADDRESS",
        help=f"{what} on Ray: 'local' (a Ray instance on this machine), HOST:PORT of a head node, "
        "ray://HOST:PORT, or nothing for the cluster this machine joined with 'ray start'; the "
        "photos and the index folder must be on a path every node reads (needs: pip install "
        '"segsearch[ray]")',
    )
    p.add_argument(
        "--ray-actors",
        type=_positive,
        default=None,
        metavar="N",
        help="Ray actors (default: "
        + (
            "one per GPU of the cluster, else its CPUs / --ray-threads)"
            if indexing
            else "one per shard, at most one per CPU)"
        ),
    )
    if indexing:
        p.add_argument(
            "--ray-threads",
            type=_positive,
            default=None,
            metavar="T",
            help="torch threads (and CPUs reserved) per CPU actor (default: as many as torch uses here, "
            "one per core, so the index is the one a run without --ray writes, bit for bit)",
        )


def _search_options(p: argparse.ArgumentParser, device_help: str) -> None:
    """The options ``search`` and ``gui`` share: the network for photo queries, the photos folder, Ray."""
    p.add_argument("--device", default=None, help=device_help)
    p.add_argument(
        "--weights",
        default=None,
        help="network weights (.tflite or imported .safetensors; default: the network the index was built with)",
    )
    _photos_option(p)
    _ray_options(p, "scan the shards")


def _photos_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--photos",
        metavar="DIR",
        default=None,
        help="where the indexed photos are (default: the folder recorded at indexing time)",
    )


def _filter_options(p: argparse.ArgumentParser) -> None:
    """The metadata filters of a search (they need the folder's photos.sqlite)."""
    p.add_argument(
        "--after",
        metavar="DATE",
        default=None,
        help="only photos taken at or after DATE (e.g. 2024-05-01 or 2024-05-01T12:00; the EXIF date, else "
        "the file's modification time)",
    )
    p.add_argument("--before", metavar="DATE", default=None, help="only photos taken before DATE (exclusive)")
    p.add_argument(
        "--folder",
        metavar="SUB",
        default=None,
        help="only photos in the folder SUB of the photos folder (relative, e.g. 2024/trip) or its subfolders",
    )
    p.add_argument(
        "--camera", metavar="TEXT", default=None, help="only photos whose camera model contains TEXT (any case)"
    )


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad command line said in one line (``segsearch: error: ...``, exit 2) like every other
    error, instead of the usage block; ``--help`` still shows it."""

    def error(self, message: str):
        words = self.prog.split()  # "segsearch" or "segsearch COMMAND"
        self.exit(2, f"segsearch: error: {message} (see '{' '.join(words[:2])} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="segsearch", description="Spatial-semantic image search.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "index",
        help="index a folder of photos (resumable)",
        description="Segment every photo under PHOTOS_DIR, train the codebooks on a sample and "
        "write INDEX_DIR/index.segsearch. Interrupt at any time; the same command "
        "resumes where it stopped.",
    )
    p.add_argument(
        "photos_dir", metavar="PHOTOS_DIR", help="folder searched recursively for .jpg/.jpeg/.png/.webp/.bmp"
    )
    p.add_argument("--out", required=True, metavar="INDEX_DIR", help="index folder (created if missing)")
    p.add_argument("--size", type=_positive, default=None, help="map size n (default 64)")
    p.add_argument(
        "--centroids",
        type=_positive,
        default=None,
        help="centroids K per class, 1..256 (default: the largest power of two <= photos / 8, within "
        "4..256; lowered to the number of readable sample photos if larger)",
    )
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if available)")
    p.add_argument(
        "--weights",
        default=None,
        help="network weights (.tflite or imported .safetensors; default: the bundled network)",
    )
    p.add_argument("--batch", type=_positive, default=8, help="photos per batch (default 8)")
    p.add_argument("--workers", type=int, default=1, help="processes decoding photos (default 1; 0: none)")
    p.add_argument("--sample", type=_positive, default=2000, help="photos to train the codebooks on (default 2000)")
    p.add_argument(
        "--add",
        action="store_true",
        help="append new photos to an existing index with its codebook, as a new shard (nothing already "
        "written is rewritten; 'segsearch compact' merges the shards)",
    )
    p.add_argument(
        "--captions",
        default=None,
        metavar="FILE",
        help="COCO captions .json or a CSV with header path,caption; stored in INDEX_DIR/captions.sqlite",
    )
    p.add_argument(
        "--ranking",
        choices=("balanced", "l2"),
        default=None,
        help="how photos are compared, fixed when the index is made: balanced (default: class-prior "
        "correction, fewer photos that turn up for every query) or l2 (the paper's squared L2)",
    )
    p.add_argument(
        "--no-exact",
        dest="keep_exact",
        action="store_false",
        default=None,
        help="keep only the PQ codes, not each photo's exact maps (a few tens of kB per photo): searches then "
        "rank by the codes alone, with ties among similar photos",
    )
    p.add_argument(
        "--rerank",
        type=_count,
        default=None,
        metavar="N",
        help="candidates a search re-ranks by their exact maps, recorded in the index (default 32; 0: none)",
    )
    _ray_options(p, "segment and encode the photos", indexing=True)
    p.set_defaults(func=_cmd_index)

    p = sub.add_parser(
        "search",
        help="search an index by photo, sketch, photo + sketch, and/or caption words",
        description="Rank the indexed photos. A photo alone is an image query, a sketch alone a "
        "sketch query, both a photo with a partial sketch drawn over it. --text alone ranks "
        "the photos whose captions hold a query word other than a stop word, in any form ('surfing': "
        "surfer, surfboard; 'man': men), by bm25; with a photo or sketch, by the number of such query words "
        "in a photo's captions, ties broken by the layout distance.",
    )
    p.add_argument("index_dir", metavar="INDEX_DIR", help="folder made by 'segsearch index'")
    p.add_argument("--image", metavar="PHOTO", default=None, help="query photo")
    p.add_argument(
        "--sketch",
        metavar="SKETCH.png",
        default=None,
        help="sketch PNG: single-channel (0 = unspecified, v = class v-1) or RGB in the index's palette "
        "(black = unspecified); any size",
    )
    p.add_argument(
        "--draw",
        metavar="CLASS:x0,y0,x1,y1",
        action="append",
        default=[],
        help="draw a box of a class into the sketch, in fractions of the canvas, e.g. sky:0,0,1,0.4 "
        "(repeatable; painted over --sketch)",
    )
    p.add_argument("--text", default=None, help="caption words (needs an index built with --captions)")
    p.add_argument("-k", type=_positive, default=10, help="number of results (default 10)")
    p.add_argument("--json", action="store_true", help="one JSON object per result line")
    p.add_argument(
        "--sheet", metavar="OUT.png", default=None, help="also write a contact sheet of the query and results"
    )
    p.add_argument(
        "--overlay",
        choices=["outline", "translucent", "none"],
        default="outline",
        help="how the sheet draws each result's labels over it: class boundaries (default), blended, or not at all",
    )
    p.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="search threads (default: all cores; more than the CPUs this process may use are clamped)",
    )
    p.add_argument(
        "--rerank",
        type=_count,
        default=None,
        metavar="N",
        help="re-rank the N nearest by the codes by their exact maps (default: the index's, 32; 0: the codes alone)",
    )
    _filter_options(p)
    p.add_argument(
        "--exclude",
        metavar="CLASS[:SHARE]",
        action="append",
        default=[],
        help="leave out the photos where CLASS covers at least SHARE of the photo (its most likely class there), "
        "a fraction or a percentage in (0, 1] (default 0.01, i.e. 1%%); repeatable, e.g. --exclude car "
        "--exclude person:5%%",
    )
    p.add_argument(
        "--emphasize",
        metavar="CLASS[:WEIGHT]",
        action="append",
        default=[],
        help="make CLASS count more: photos that show it where the query photo or sketch has it rank first "
        "(WEIGHT > 0, default 6; a photo without the class is pushed back by WEIGHT times the query's own size); "
        "repeatable, e.g. --emphasize bus or --emphasize bus:8",
    )
    p.add_argument(
        "--like",
        metavar="ID",
        action="append",
        default=[],
        help="more like this indexed photo (its id as a search prints it, the path inside the photos folder): "
        "the query moves toward its maps; repeatable; alone it is a query of its own",
    )
    p.add_argument(
        "--unlike",
        metavar="ID",
        action="append",
        default=[],
        help="fewer like this indexed photo: the query moves away from its maps; repeatable; needs --image or --like",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="split each result's distance by class: the 3 largest parts per line (with --json: all; with "
        "--sheet: the top ones under each tile)",
    )
    _search_options(p, "torch device for the photo's network (default: cuda if available)")
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser(
        "metadata",
        help="add the photos' dates, cameras and folders to an index folder that lacks them",
        description="Read each indexed photo's date (EXIF DateTimeOriginal, else the file's modification "
        "time) and camera model (EXIF) into INDEX_DIR/photos.sqlite, for the photos it lacks: for "
        "folders indexed before search filters existed. 'segsearch index' does this itself.",
    )
    p.add_argument("index_dir", metavar="INDEX_DIR", help="folder made by 'segsearch index'")
    _photos_option(p)
    p.set_defaults(func=_cmd_metadata)

    p = sub.add_parser(
        "compact",
        help="merge an index folder's shards into one index file",
        description="Merge the shards that 'segsearch index --add' wrote into INDEX_DIR/index.segsearch "
        "and delete them. Searches give the same results before and after; a crash "
        "at any point leaves a folder that opens with every photo once.",
    )
    p.add_argument("index_dir", metavar="INDEX_DIR", help="folder made by 'segsearch index'")
    p.add_argument(
        "--max-photos",
        type=_positive,
        default=None,
        metavar="N",
        help="keep index.segsearch and merge only consecutive shards, into shards of at most N photos "
        "(a folder searched on Ray keeps shards to spread over its machines)",
    )
    p.set_defaults(func=_cmd_compact)

    p = sub.add_parser(
        "classes",
        help="list an index's classes with their sketch values and colours",
        description="Print a header line, then one line per class: its index (the number the "
        "Python API, --draw and the sketch tool use), the value a single-channel sketch "
        "PNG uses for it (index + 1), its colour in RGB sketches, and its name.",
    )
    p.add_argument("index_dir", metavar="INDEX_DIR", help="folder made by 'segsearch index'")
    p.add_argument("--json", action="store_true", help="one JSON object per class")
    p.set_defaults(func=_cmd_classes)

    p = sub.add_parser(
        "gui",
        help="the sketch tool: draw where classes are, search as you draw",
        description="Open a window to draw a sketch (optionally over a photo) and see the nearest "
        "photos after every stroke; click a result to refine from it.",
    )
    p.add_argument("index_dir", metavar="INDEX_DIR", help="folder made by 'segsearch index'")
    p.add_argument("-k", type=_positive, default=12, help="number of results shown (default 12)")
    _search_options(p, "torch device for photo queries (default: cuda if available)")
    p.set_defaults(func=_cmd_gui)

    p = sub.add_parser(
        "serve",
        help="the web app and HTTP API: search an index folder from a browser or over HTTP",
        description="Serve INDEX_DIR at http://HOST:PORT/: the sketch tool in a browser at /, the HTTP API under "
        "/api (its schema at /docs). Loopback only unless --host says otherwise, and then with --token. New photos "
        "added with 'segsearch index ... --add' are served within seconds, without a restart "
        '(needs: pip install "segsearch[serve]").',
    )
    p.add_argument("index_dir", metavar="INDEX_DIR", help="folder made by 'segsearch index'")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    p.add_argument(
        "--token",
        default=os.environ.get("SEGSEARCH_TOKEN"),
        help="every API call must carry 'Authorization: Bearer TOKEN'; the page asks for it once (default: "
        "$SEGSEARCH_TOKEN; needed with a --host other machines reach)",
    )
    p.add_argument(
        "--insecure-no-token",
        action="store_true",
        help="serve a --host other machines reach without a token (anyone who reaches it sees the photos)",
    )
    p.add_argument(
        "--max-upload-mb", type=_positive, default=20, metavar="MB", help="largest request body (default 20 MB)"
    )
    p.add_argument(
        "--photo-workers",
        type=_positive,
        default=None,
        metavar="N",
        help="threads segmenting query photos (default: half the cores, at least 1)",
    )
    p.add_argument(
        "--threads", type=_positive, default=1, help="threads per search (default 1: concurrent requests use the cores)"
    )
    p.add_argument(
        "--reload-seconds",
        type=float,
        default=2.0,
        metavar="S",
        help="look for new photos in INDEX_DIR every S seconds (default 2; 0: never)",
    )
    _search_options(p, "torch device for query photos (default: cuda if available)")
    p.set_defaults(func=_cmd_serve)
    return parser


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {text!r}")
    return value


def _cmd_serve(args) -> int:
    from .serve.server import serve

    if not args.reload_seconds >= 0:
        raise ValueError(f"--reload-seconds must be >= 0, got {args.reload_seconds}")
    serve(
        args.index_dir,
        host=args.host,
        port=args.port,
        token=args.token or None,
        insecure_no_token=args.insecure_no_token,
        photos_dir=args.photos,
        device=args.device,
        weights=args.weights,
        ray=args.ray,
        ray_actors=args.ray_actors,
        max_upload_bytes=args.max_upload_mb * 1_000_000,
        photo_workers=args.photo_workers,
        search_threads=args.threads,
        reload_seconds=args.reload_seconds,
    )
    return 0


def _cmd_gui(args) -> int:
    from . import gui

    return gui.run(
        args.index_dir,
        device=args.device,
        weights=args.weights,
        k=args.k,
        photos_dir=args.photos,
        ray=args.ray,
        ray_actors=args.ray_actors,
    )


def _cmd_index(args) -> int:
    from .library.build import build_index

    report = build_index(
        args.photos_dir,
        args.out,
        size=args.size,
        n_centroids=args.centroids,
        device=args.device,
        weights=args.weights,
        batch=args.batch,
        sample=args.sample,
        add=args.add,
        captions=args.captions,
        workers=args.workers,
        ranking=args.ranking,
        keep_exact=args.keep_exact,
        rerank=args.rerank,
        ray=args.ray,
        ray_actors=args.ray_actors,
        ray_threads=args.ray_threads,
    )
    into = report.index_path if report.shard_path is None else f"{report.shard_path} (a new shard)"
    print(f"indexed {report.n_done} photos ({report.n_new} new, K={report.n_centroids}) into {into}")
    if report.failed:
        names = ", ".join(f"{p} ({e})" for p, e in report.failed[:SHOW_FAILED])
        more = f" and {len(report.failed) - SHOW_FAILED} more" if len(report.failed) > SHOW_FAILED else ""
        n = len(report.failed)
        print(
            f"{n} photo{'s' if n != 1 else ''} could not be read and {'were' if n != 1 else 'was'} skipped: "
            f"{names}{more}"
        )
    if args.captions is not None:
        print(f"stored {report.n_captions} captions")
    m = report.metadata
    if m.n_added:
        print(f"recorded the date and camera of {m.n_added} photos ({m.n_exif} dated by EXIF, {m.n_file} by file time)")
    return 0


def _cmd_compact(args) -> int:
    from .engine.layout import INDEX_FILE
    from .library.shards import compact

    d = Path(args.index_dir).expanduser()
    if not (d / INDEX_FILE).is_file():
        raise FileNotFoundError(f"{d} has no {INDEX_FILE}; build it with 'segsearch index PHOTOS_DIR --out INDEX_DIR'")
    n = compact(d, max_photos=args.max_photos)
    into = d / INDEX_FILE if args.max_photos is None else f"shards of at most {args.max_photos} photos"
    nothing = (
        f"{d} has no shards to merge"
        if args.max_photos is None
        else f"{d} has no consecutive shards that fit in {args.max_photos} photos; nothing merged"
    )
    print(f"merged {n} shard{'s' if n != 1 else ''} into {into}" if n else nothing)
    return 0


def _cmd_metadata(args) -> int:
    from .library.add_metadata import add_metadata

    r = add_metadata(args.index_dir, photos_dir=args.photos)
    if r.n_added:
        print(
            f"added the metadata of {r.n_added} photos ({r.n_exif} dated by EXIF, {r.n_file} by file time, "
            f"{r.n_undated} undated)"
        )
    else:
        print("every indexed photo already has its metadata" if not r.skipped else "no metadata added")
    return 0


def _parse_box(spec: str) -> tuple[str, list[str]]:
    name, sep, box = spec.rpartition(":")
    if not sep or not name:
        raise ValueError(f"--draw {spec!r}: expected CLASS:x0,y0,x1,y1, e.g. sky:0,0,1,0.4")
    return name, box.split(",")


def _class_spec(spec: str) -> tuple[str, str]:
    """(class name, value text) of a CLASS[:VALUE] flag (value text "" without a colon)."""
    name, sep, text = spec.rpartition(":")
    return (name, text) if sep else (spec, "")


def _parse_exclude(specs: list[str]) -> dict[str, float] | None:
    """--exclude CLASS[:SHARE] flags as {class name: share}: SHARE a fraction (0.03) or a percentage (3%), default
    1%; a class given twice keeps its smallest share."""
    from .engine.class_shares import DEFAULT_EXCLUDE_SHARE

    out: dict[str, float] = {}
    for spec in specs:
        name, text = _class_spec(spec)
        share = DEFAULT_EXCLUDE_SHARE
        if text.strip():
            t = text.strip()
            try:
                share = float(t[:-1]) / 100 if t.endswith("%") else float(t)
            except ValueError:
                raise ValueError(
                    f"--exclude {spec!r}: expected CLASS or CLASS:SHARE with SHARE a fraction (0.03) or a "
                    "percentage (3%) of the photo"
                ) from None
            if not (0 < share <= 1):
                raise ValueError(f"--exclude {spec!r}: SHARE must be in (0, 1] (a fraction, or a percentage to 100%)")
        if not name.strip():
            raise ValueError(f"--exclude {spec!r}: name a class, e.g. --exclude car or --exclude car:0.05")
        out[name] = min(share, out.get(name, share))
    return out or None


def _parse_emphasize(specs: list[str]) -> dict[str, float] | None:
    """--emphasize CLASS[:WEIGHT] flags as {class name: weight} (default weight
    :data:`~segsearch.engine.emphasis.DEFAULT_WEIGHT`)."""
    from .engine.emphasis import DEFAULT_WEIGHT

    out: dict[str, float] = {}
    for spec in specs:
        name, text = _class_spec(spec)
        weight = DEFAULT_WEIGHT
        if text.strip():
            try:
                weight = float(text)
            except ValueError:
                raise ValueError(
                    f"--emphasize {spec!r}: expected CLASS or CLASS:WEIGHT with WEIGHT a number > 0"
                ) from None
            if not (0 < weight < math.inf):
                raise ValueError(f"--emphasize {spec!r}: WEIGHT must be a number > 0 (default {DEFAULT_WEIGHT:g})")
        if not name.strip():
            raise ValueError(f"--emphasize {spec!r}: name a class, e.g. --emphasize bus or --emphasize bus:8")
        if name in out:
            raise ValueError(f"--emphasize {name!r} is given twice; give each class once")
        out[name] = weight
    return out or None


def _photo_ids(pi, ids: list[str]) -> list | None:
    """--like / --unlike ids as the index holds them: strings, or integers for an index with integer ids."""
    if not ids:
        return None
    if pi.index.string_ids:
        return list(ids)
    return [int(i) if i.strip().lstrip("-").isdigit() else i for i in ids]


def _explained_text(h, top: int = 3) -> str:
    """A result's largest distance parts for the text output: a tab, then ``name=part`` separated by spaces."""
    if not h.explain:
        return ""
    return "\t" + " ".join(f"{p.name}={p.part:.4g}" for p in h.explain[:top])


def _cmd_search(args) -> int:
    from .library.photo_index import PhotoIndex
    from .sketch.files import draw_boxes

    if (
        args.image is None
        and args.sketch is None
        and not args.draw
        and not (args.text and args.text.strip())
        and not args.like
    ):
        raise ValueError(
            "nothing to search for: give --image PHOTO, --sketch SKETCH.png, --draw CLASS:box, --text or --like ID"
        )
    if args.image is not None and not Path(args.image).is_file():
        raise FileNotFoundError(f"photo {args.image} does not exist")
    pi = PhotoIndex.open(
        args.index_dir,
        device=args.device,
        weights=args.weights,
        photos_dir=args.photos,
        ray=args.ray,
        ray_actors=args.ray_actors,
    )
    sketch = None if args.sketch is None else pi.sketch_labels(args.sketch)
    if args.draw:
        sketch = draw_boxes(sketch, [_parse_box(s) for s in args.draw], pi.classes, pi.size)
    hits = pi.search(
        image=args.image,
        sketch=sketch,
        text=args.text,
        k=args.k,
        threads=args.threads,
        rerank=args.rerank,
        after=args.after,
        before=args.before,
        folder=args.folder,
        camera=args.camera,
        exclude=_parse_exclude(args.exclude),
        explain=args.explain,
        weights=_parse_emphasize(args.emphasize),
        like=_photo_ids(pi, args.like),
        unlike=_photo_ids(pi, args.unlike),
    )
    if args.exclude and not pi.has_class_shares:
        print(
            "segsearch: note: this index stores no class shares (built with --no-exact, or before they were "
            "stored): --exclude judges them from the codes, more coarsely",
            file=sys.stderr,
        )
    for h in hits:
        if args.json:
            print(json.dumps(h.as_dict()))
        else:
            dist = "-" if math.isnan(h.distance) else f"{h.distance:.6g}"
            words = "" if h.text_score is None else f"\t{h.text_score}"  # the text level
            bm25 = "" if h.bm25 is None else f"\t{h.bm25:.4g}"  # text alone: the score that ranked it
            why = _explained_text(h)
            print(f"{h.rank}\t{'-' if h.path is None else h.path}\t{dist}{words}{bm25}{why}")
    for h in hits:  # ids the index folder should not hold: never opened (its maker chose them)
        if h.path is None:
            print(f"segsearch: note: result {h.rank} not shown (id {str(h.id)!a}): {h.note}", file=sys.stderr)
    if args.sheet:
        from .engine.storage import atomic_write
        from .sketch.sheet import contact_sheet

        def note(h, why):
            if h.path is not None:  # refused ids were noted above
                print(
                    f"segsearch: note: result {h.rank} ({h.path}) is {why}: a grey tile on the sheet", file=sys.stderr
                )

        sheet = contact_sheet(
            pi,
            hits,
            image=args.image,
            sketch=sketch,
            text=args.text,
            overlay=args.overlay,
            report=note,
            explain=args.explain,
        )
        with atomic_write(args.sheet) as f:
            sheet.save(f, format="PNG")
    if not hits:
        print("no results" + (" (no photo's captions contain the words)" if args.text else ""), file=sys.stderr)
    return 0


def _cmd_classes(args) -> int:
    """One line per class: its index (0-based, the number used by the Python API, labels.txt, the sketch
    tool's palette and ``--draw``), the value a single-channel sketch PNG uses for it (index + 1), its colour
    in RGB sketches and its name; tab-separated under a header line, or one JSON object per class."""
    from .library.photo_index import PhotoIndex

    pi = PhotoIndex.open(args.index_dir)
    if not args.json:
        print("class\tpng\tcolour\tname")
    for c, (name, rgb) in enumerate(zip(pi.classes, pi.palette.tolist())):
        colour = "#{:02x}{:02x}{:02x}".format(*rgb)
        if args.json:
            print(json.dumps({"class": c, "value": c + 1, "name": name, "color": colour}))
        else:
            print(f"{c}\t{c + 1}\t{colour}\t{name}")
    return 0


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("segsearch: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`segsearch ... | head`): stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the exit's flush of what is left must not fail again
        return 128 + 13  # as if killed by SIGPIPE
    except (ValueError, SegsearchError, FileNotFoundError, OSError, sqlite3.Error, ImportError) as e:
        print(f"segsearch: error: {_error_line(e)}", file=sys.stderr)
        return 2


def run() -> None:
    """The ``segsearch`` command (and ``python -m segsearch.cli``): :func:`main`, then the process ends through
    :func:`exit_now`."""
    exit_now(main())


def exit_now(code: int) -> None:
    """End the process with ``code`` as Python's own exit would -- other non-daemon threads finished, the exit
    handlers run (temporary folders, multiprocessing, Ray, logging), stdout and stderr flushed -- but without the
    interpreter's teardown of every module and object, which takes 0.4-0.8 s once torch is imported (on the
    development VM, ``python -c 'import torch'`` took 1.9-2.4 s, and 1.1-1.5 s ending this way). Every file the
    commands write is closed by then. Where another non-daemon thread still runs, or this Python has no way to
    run the exit handlers, it is the usual ``sys.exit``."""
    run_handlers = getattr(atexit, "_run_exitfuncs", None)
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if run_handlers is None or others:
        sys.exit(code)
    run_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # the reader went away, or the stream was closed
            code = code or 120  # what Python's own exit gives when its final flush fails
    getattr(os, "_exit")(code)  # noqa: B009 -- os._exit is documented; its underscore is not a private name here


def _error_line(e: BaseException) -> str:
    """One line for an error; a full disk says what to do (every write is atomic or transactional, so nothing
    finished is lost, and an index run resumes where it stopped)."""
    msg = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, OptionError):  # the library names its options as Python does; say them as flags
        flag = FLAGS.get(e.option, "--" + e.option.replace("_", "-"))
        msg = msg.replace(e.option, flag, 1) if msg.startswith(e.option) else f"{flag}: {msg}"
    full = (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or (
        isinstance(e, sqlite3.OperationalError) and "full" in str(e)
    )
    if full:
        msg += (
            "; nothing already written is lost: free some space and run the same command again (an index "
            "run resumes where it stopped)"
        )
    return msg


if __name__ == "__main__":
    run()
