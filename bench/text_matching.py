"""Which photos a text-only caption search returns, on the COCO-MINI captions (issue 19, item 2).

    python bench/text_matching.py [--captions ../shared/data/coco-mini/captions_train2017.json] [-k 10]

For six caption queries, ranks the 80 photos as ``segsearch search --text`` does (``Captions.bm25``, best first,
ties in caption order) and checks every result against hand-written patterns of each query word's forms (a
judge independent of segsearch's stemming): a result is *padded* if its captions hold no non-stop query word
in any form; a photo is *missed* if its captions hold one but it is not among all the photos the search returns.
Then lists, for every non-stop word of the captions, the caption words a bare prefix of its stem would add
and those segsearch takes as forms of it (``Captions.forms``), for inspection.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from segsearch.library.captions import Captions, query_words

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco-mini" / "captions_train2017.json"

#: query -> one pattern per non-stop query word, matching that word's forms in a caption (lower case).
QUERIES = {
    "a cat": [r"\bcats?\b"],
    "surfing": [r"\bsurf(s|ed|ing|ers?|boards?|boarders?)?\b"],
    "a man riding a horse": [
        r"\b(man|men)\b",
        r"\b(ride|rides|riding|rode|ridden|riders?)\b",
        r"\bhorse(s|back|m[ae]n)?\b",
    ],
    "red bus": [r"\breds?\b", r"\bbus(es|ses)?\b"],
    "pizza on a table": [r"\bpizzas?\b", r"\btables?(cloths?|tops?)?\b"],
    "dog with a frisbee": [r"\bdogs?\b", r"\bfrisbees?\b"],
}


def load(path: Path) -> dict[str, list[str]]:
    """{photo file name: its captions}, photos in order of their first caption."""
    data = json.loads(path.read_text(encoding="utf-8"))
    names = {im["id"]: im["file_name"] for im in data["images"]}
    out: dict[str, list[str]] = {}
    for a in data["annotations"]:
        out.setdefault(names[a["image_id"]], []).append(a["caption"])
    return out


def has_word(patterns: list[str], captions: list[str]) -> bool:
    text = "\n".join(captions).lower()
    return any(re.search(p, text) for p in patterns)


def ranked(caps: Captions, text: str, order: list[str]) -> list[str]:
    scores = caps.bm25(text)
    return sorted(scores, key=lambda p: (-scores[p], order.index(p)))


def query_table(caps: Captions, photos: dict[str, list[str]], k: int) -> tuple[int, int, int]:
    """Print each query's results; return (results, padded, missed) over all queries."""
    order = list(photos)
    n = padded = missed = 0
    for text, patterns in QUERIES.items():
        found = ranked(caps, text, order)
        top = found[:k]
        bad = [p for p in top if not has_word(patterns, photos[p])]
        relevant = [p for p in order if has_word(patterns, photos[p])]
        lost = [p for p in relevant if p not in found]
        n, padded, missed = n + len(top), padded + len(bad), missed + len(lost)
        print(f"{text!r}: {len(top)} results, {len(bad)} padded; {len(lost)} missed of {len(relevant)} with the word")
        for p in bad + lost:
            print(f"    {'padded' if p in bad else 'missed'} {p}: {' | '.join(photos[p][:2])}")
    print(f"total: {n} results, {padded} padded, {missed} missed")
    return n, padded, missed


def forms_table(caps: Captions, photos: dict[str, list[str]]) -> None:
    """For every non-stop caption word used as a query: the caption terms a bare prefix of its stem adds (3+
    letters), marked + where segsearch takes them as forms of the word; then the counts by stem length."""
    words = sorted({w.lower() for cs in photos.values() for c in cs for w in re.findall(r"[^\W_]+", c)})
    seen: set[tuple[str, ...]] = set()
    counts: dict[int, list[int]] = {}  # stem length -> [prefix-only terms, of them taken as forms]
    terms = [t for (t,) in caps._db.execute("SELECT term FROM caption_terms")]
    for qw in (q for w in words for q in query_words(w) if not q.stop):
        if qw.terms in seen or len(qw.terms) != 1:
            continue
        seen.add(qw.terms)
        stem = qw.terms[0]
        prefixed = [t for t in terms if t != stem and t.startswith(stem)] if len(stem) >= 3 else []
        taken = set(caps.forms(qw.text)[qw.text])
        extra = sorted(taken - set(prefixed) - {stem})  # irregular forms, or forms of the stem + e
        if prefixed or extra:
            marks = [("+" if t in taken else "-") + t for t in prefixed] + ["+" + t for t in extra]
            print(f"{qw.text} ({stem}): {' '.join(marks)}")
        c = counts.setdefault(min(len(stem), 6), [0, 0])
        c[0] += len(prefixed)
        c[1] += sum(t in taken for t in prefixed)
    for n, (pre, took) in sorted(counts.items()):
        print(f"stems of {n}{'+' if n == 6 else ''} letters: {pre} prefix-only terms, {took} taken as forms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--captions", type=Path, default=DEFAULT, help="a COCO captions json")
    ap.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    args = ap.parse_args(argv)
    if not args.captions.is_file():
        print(f"no captions file {args.captions}; give --captions", file=sys.stderr)
        return 2
    photos = load(args.captions)
    caps = Captions.from_pairs([(p, c) for p, cs in photos.items() for c in cs])
    print(f"{len(photos)} photos, {len(caps)} captions, k = {args.k}\n")
    query_table(caps, photos, args.k)
    if hasattr(caps, "forms"):  # versions before word forms (0cc79b3 and older) run the first table only
        print("\nword forms: + taken by segsearch, - a bare prefix only")
        forms_table(caps, photos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
