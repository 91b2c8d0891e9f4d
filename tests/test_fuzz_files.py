"""Fuzz of index files: byte flips, truncations, extensions, header JSON edits with a recomputed header CRC
(lying shapes, offsets, dtypes, counts, kinds...) and prefix edits. Every load must either succeed with results
equal to the original index's or raise IndexFormatError: no other exception, no crash, no wrong result.
``verify=False`` loads of the same files must never crash nor raise anything but IndexFormatError (their
results may differ: they trust the arrays).

The normal run does 2,400 mutations (about 10 s); ``pytest -m fuzz`` runs 60,000 more. The mutations run in a
subprocess, so a crash fails the test with the mutation that caused it instead of killing pytest. Run by hand:

    python tests/test_fuzz_files.py --mutations 5000 --seed 7
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

PREFIX = struct.Struct("<8sIII")
EVIL = [
    -1,
    0,
    1,
    2,
    3,
    63,
    64,
    65,
    255,
    256,
    257,
    1024,
    1025,
    2**31 - 1,
    2**31,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    10**30,
    -(2**63),
    0.5,
    -0.0,
    1e308,
    1.5,
    "",
    "x",
    "0",
    "int64",
    "float32",
    "uint8",
    "float64",
    "object",
    "<f4",
    "str",
    "range",
    "V8",
    None,
    True,
    False,
    [],
    {},
    [1],
    [-1],
    [0, 0],
    [2**62, 2**62],
    {"a": 1},
    [[1]],
    "𝔘nicode",
    "a" * 1000,
]


# ---------------------------------------------------------------------------------------------- base indexes
def _probs(n, C, size, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, C, size, size)) * 2.0
    e = np.exp(x - x.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def _codebook(C, K, n, seed):
    cb = np.random.default_rng(seed).random((C, K, n, n), dtype=np.float32)
    return cb / cb.sum(axis=0)


def _sketch(C, n, seed):
    rng = np.random.default_rng(seed)
    lab = np.full((n, n), -1, np.int32)
    m = rng.random((n, n)) < 0.5
    lab[m] = rng.integers(0, C, int(m.sum()))
    lab[0, 0] = 0
    return lab


def make_bases(folder: Path):
    """(name, file bytes, index) of a few small indexes: string ids + exact maps, int64 ids, implicit ids with a
    partial row-run block (n = 20), and no images at all."""
    from segsearch import Index

    out = []
    probs = _probs(40, 4, 8, 1)
    a = Index(4, 8, 8, class_names=["sky", "road", "tree", "car"], keep_exact=True, metadata={"net": "é", "v": [1]})
    a.train(probs, niter=2, seed=0)
    a.add(probs, ids=[f"photos/é{i}.jpg" for i in range(40)])
    out.append(("str+exact", a))
    rng = np.random.default_rng(2)
    out.append(
        (
            "int64",
            Index.from_codebook(
                _codebook(3, 16, 8, 3),
                rng.integers(0, 16, (50, 3), dtype=np.uint8),
                ids=rng.choice(10**12, 50, replace=False) - 5 * 10**11,
            ),
        )
    )
    out.append(("range", Index.from_codebook(_codebook(2, 4, 20, 4), rng.integers(0, 4, (30, 2), dtype=np.uint8))))
    out.append(("empty", Index.from_codebook(_codebook(2, 4, 8, 5), np.zeros((0, 2), np.uint8))))
    bases = []
    for name, ix in out:
        p = folder / f"{name}.segsearch"
        ix.save(p)
        back = Index.load(p)
        bases.append((name, p.read_bytes(), results(back)))
    return bases


def results(ix) -> dict:
    """What a loaded index must reproduce: its shape, ids, codes, codebook and search results."""
    from segsearch import Query

    C, n, N = ix.num_classes, ix.size, len(ix)
    p = _probs(1, C, n, 9)[0]
    qs = [Query.image(p), Query.sketch(_sketch(C, n, 3)), Query.image_and_sketch(p, _sketch(C, n, 4))]
    out = {
        "shape": (C, n, ix.n_centroids, N, ix.keep_exact),
        "ids": ix.ids.tolist(),
        "codes": np.asarray(ix.codes).tobytes(),
        "codebook": np.asarray(ix.codebook).tobytes(),
    }
    mask = np.arange(N) % 3 == 1
    # rerank given: the index's default is a setting (like its metadata), not data to reproduce
    for i, r in enumerate(ix.search(qs, k=N + 1, eps=0, rerank=0) + ix.search(qs, k=5, subset=mask, rerank=0)):
        out[f"q{i}"] = (r.ids.tolist(), r.distances.tobytes())
    if ix.keep_exact:
        for i, r in enumerate(ix.search(qs, k=N, exact=True) + ix.search(qs, k=5, subset=mask, rerank=N // 2)):
            out[f"x{i}"] = (r.ids.tolist(), r.distances.tobytes())
    return out


# ---------------------------------------------------------------------------------------------- mutations
def _split(data: bytes):
    _, version, hlen, _ = PREFIX.unpack(data[: PREFIX.size])
    start = -(-(PREFIX.size + hlen) // 64) * 64
    return version, json.loads(data[PREFIX.size : PREFIX.size + hlen]), data[start:]


def _join(version: int, blob: bytes, body: bytes, crc: int | None = None) -> bytes:
    start = -(-(PREFIX.size + len(blob)) // 64) * 64
    crc = zlib.crc32(blob) if crc is None else crc
    return PREFIX.pack(b"SEGSRCH\0", version, len(blob), crc) + blob + b"\0" * (start - PREFIX.size - len(blob)) + body


def _paths(node, at=()):
    """Every (path, value) in a JSON tree, the root excepted."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield at + (k,), v
        yield from _paths(v, at + (k,))


def _evil_value(rng: random.Random, old, header):
    r = rng.random()
    if isinstance(old, int) and not isinstance(old, bool) and r < 0.5:
        return rng.choice([old + 1, old - 1, old + 64, old - 64, old * 2, old // 2, -old, old + 2**32, old * 2**40])
    if isinstance(old, list) and old and r < 0.6:
        new = list(old)
        op = rng.randrange(5)
        if op == 0:
            rng.shuffle(new)
        elif op == 1:
            new.pop(rng.randrange(len(new)))
        elif op == 2:
            new.insert(rng.randrange(len(new) + 1), rng.choice([1, 2, 0, old[0]]))
        elif op == 3 and all(isinstance(v, int) for v in new):
            i = rng.randrange(len(new))
            new[i] = rng.choice([new[i] + 1, new[i] - 1, new[i] * 2, 0, -new[i]])
        else:
            return [old] if rng.random() < 0.5 else new * 2
        return new
    if r < 0.75:  # a value taken from elsewhere in the header: right type, wrong place
        return copy.deepcopy(rng.choice([v for _, v in _paths(header)]))
    return copy.deepcopy(rng.choice(EVIL))


def mutate(rng: random.Random, data: bytes) -> tuple[str, bytes, str]:
    """(kind, mutated bytes, description)."""
    r = rng.random()
    if r < 0.22:  # byte flips anywhere, or in the prefix and header
        bad = bytearray(data)
        k = rng.choice([1, 1, 1, 2, 3, 8])
        hi = len(data) if rng.random() < 0.6 else min(len(data), 64 + PREFIX.unpack(data[:20])[2])
        spots = [rng.randrange(hi) for _ in range(k)]
        for s in spots:
            bad[s] ^= rng.randrange(1, 256)
        return "flip", bytes(bad), f"flip bytes {spots}"
    if r < 0.32:  # truncations, some at array boundaries
        version, header, body = _split(data)
        start = len(data) - len(body)
        cuts = [start + e["rel"] + e["nbytes"] + d for e in header["arrays"].values() for d in (-1, 0, 1)]
        cut = rng.choice(cuts) if rng.random() < 0.4 and cuts else rng.randrange(len(data))
        cut = max(0, min(cut, len(data) - 1))
        return "truncate", data[:cut], f"truncate to {cut} of {len(data)}"
    if r < 0.36:  # extra bytes at the end (harmless)
        extra = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        return "extend", data + extra, f"append {len(extra)} bytes"
    if r < 0.42:  # the prefix: version, header length, header CRC
        version, hlen, crc = PREFIX.unpack(data[:20])[1:]
        field = rng.randrange(3)
        vals = [version, hlen, crc]
        vals[field] = rng.choice(
            [0, 1, 2, 3, 2**32 - 1, vals[field] + 1, max(vals[field] - 1, 0), rng.randrange(2**32)]
        )
        return "prefix", PREFIX.pack(b"SEGSRCH\0", *vals) + data[20:], f"prefix field {field} = {vals[field]}"
    # header JSON edits with a recomputed header CRC
    version, header, body = _split(data)
    paths = list(_paths(header))
    in_arrays = [(p, v) for p, v in paths if p[0] == "arrays" and len(p) >= 3]
    path, old = rng.choice(in_arrays if rng.random() < 0.6 else paths)
    parent = header
    for k in path[:-1]:
        parent = parent[k]
    op = rng.random()
    if op < 0.12 and isinstance(parent, dict):
        del parent[path[-1]]
        desc = f"delete {path}"
    elif op < 0.18 and isinstance(parent, dict):
        key = rng.choice(["junk", "arrays", "shape", "rel", "count", "ids", "block_sums", "codes2"])
        parent[key] = copy.deepcopy(rng.choice(EVIL))
        desc = f"add {path[:-1] + (key,)} = {parent[key]!r:.60}"
    elif op < 0.24 and path[0] == "arrays" and len(path) >= 3:  # one array's entry copies another's field
        other = rng.choice(list(header["arrays"].values()))
        parent[path[-1]] = copy.deepcopy(other.get(path[-1], old))
        desc = f"copy {path} from another array: {parent[path[-1]]!r:.60}"
    else:
        parent[path[-1]] = _evil_value(rng, old, header)
        desc = f"set {path} = {parent[path[-1]]!r:.60} (was {old!r:.60})"
    blob = json.dumps(header, sort_keys=rng.random() < 0.5).encode()
    return "header", _join(version, blob, body), desc


# ---------------------------------------------------------------------------------------------- the run
def run(n_mutations: int, seed: int, folder: Path) -> dict:
    from segsearch import Index, IndexFormatError

    bases = make_bases(folder)
    rng = random.Random(seed)
    stats: Counter = Counter()
    problems = []
    path = folder / "mutant.segsearch"
    for i in range(n_mutations):
        name, data, want = bases[i % len(bases)]
        kind, bad, desc = mutate(rng, data)
        path.write_bytes(bad)
        stats[kind] += 1
        for verify in (True, False) if rng.random() < 0.5 else (True,):
            mmap = rng.random() < 0.5
            where = f"mutation {i} ({name}, {kind}: {desc}; mmap={mmap}, verify={verify})"
            print(where, flush=True)  # the last line names the culprit if the process dies
            try:
                got = results(Index.load(path, mmap=mmap, verify=verify))
            except IndexFormatError:
                stats["IndexFormatError" + ("" if verify else " (verify=False)")] += 1
                continue
            except Exception as e:  # noqa: BLE001 - the point: nothing else may come out
                problems.append(f"{where}: {type(e).__name__}: {str(e)[:300]}")
                stats["other exception"] += 1
                continue
            if not verify:
                stats["loaded (verify=False)"] += 1
            elif got == want:
                stats["loaded, equal"] += 1
            else:
                diff = sorted(k for k in want if got.get(k) != want[k])
                problems.append(f"{where}: loaded with other results ({diff})")
                stats["wrong results"] += 1
    return {"mutations": n_mutations, "stats": dict(stats), "problems": problems[:50]}


def _run_subprocess(tmp_path: Path, n: int, seed: int) -> dict:
    p = subprocess.run(
        [sys.executable, __file__, "--mutations", str(n), "--seed", str(seed), "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert p.returncode == 0, (
        f"the fuzz process died (status {p.returncode}) at:\n{p.stdout[-1500:]}\n{p.stderr[-3000:]}"
    )
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    print(json.dumps(summary["stats"], sort_keys=True))
    return summary


def _check(summary: dict, n: int) -> None:
    st = summary["stats"]
    assert summary["mutations"] == n
    assert not summary["problems"], "\n".join(summary["problems"])
    assert st.get("other exception", 0) == 0 and st.get("wrong results", 0) == 0
    for kind in ("flip", "truncate", "extend", "prefix", "header"):
        assert st.get(kind, 0) > n // 40, (kind, st)
    assert st["loaded, equal"] > n // 20 and st["IndexFormatError"] > n // 4, st  # both outcomes are exercised


def test_fuzz_index_files(tmp_path):
    n = 2400
    _check(_run_subprocess(tmp_path, n, seed=0), n)


def _long_fuzz_selected(config) -> bool:
    return "fuzz" in (config.getoption("-m") or "")


@pytest.mark.fuzz
def test_fuzz_index_files_long(tmp_path, request):
    if not _long_fuzz_selected(request.config):
        pytest.skip("the long fuzz (60,000 mutations, a few minutes) runs with: pytest -m fuzz")
    n = 20_000
    for seed in (1, 2, 3):
        _check(_run_subprocess(tmp_path, n, seed=seed), n)


def test_mutations_recompute_the_header_crc_correctly(tmp_path):
    """The fuzzer's header edits are read past the CRC (else the fuzz would test nothing but the CRC)."""
    from segsearch import Index

    name, data, want = make_bases(tmp_path)[0]
    version, header, body = _split(data)
    header["metadata"] = {"changed": True}
    p = tmp_path / "m.segsearch"
    p.write_bytes(_join(version, json.dumps(header).encode(), body))
    ix = Index.load(p)
    assert ix.metadata == {"changed": True} and results(ix) == want


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutations", type=int, default=2400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args()
    if args.dir is None:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            print(json.dumps(run(args.mutations, args.seed, Path(d))))
    else:
        print(json.dumps(run(args.mutations, args.seed, Path(args.dir))))
