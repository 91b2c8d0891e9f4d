"""Search fan-out on Ray against in-process search, one machine (pytest-benchmark).

    pytest bench/test_bench_ray.py --benchmark-only --benchmark-columns=min,median,mean,ops -s
    [--benchmark-json=bench-report/ray.json]

What is measured: the real-derived C = 151, K = 256 index at the paper's N (``data.real_pq_index(151)``, N =
82,783 at ``SEGSEARCH_BENCH_SCALE=1``) cut into S = 1, 2, 4, 8 equal shards, written as an index folder
(``index.segsearch`` holds the first part, ``shards.add_shard`` writes the others; ids are the photos'
positions). For each S, ``search(..., k=10, threads=1)`` with

- ``inproc``: ``segsearch.open_folder(folder)`` (the shards scanned one after another in this process);
- ``ray``: ``ray_search.open_on_ray(folder, "local", actors=min(S, RAY_CPUS))`` (one round trip per actor per
  call: the lookup tables are built here, the actors scan their shards, the lists are merged here);

each with one image query per call (``q1``: held-out CamVid photo 0) and with 8 image queries in one call
(``q8``: held-out photos 0..7; the summary divides by 8). Before timing, each Ray search is checked to return
the in-process search's ids and distances, and each in-process sharded search those of the unsharded index.
Timings are reported, not asserted. Ray is started once for the module (``num_cpus=RAY_CPUS``, a 300 MB
object store, no dashboard) and shut down at its end; one Ray index is open at a time. After pytest-benchmark's
tables the run prints one more: in-process ms, Ray ms and Ray's overhead (their difference) per query, for each
S and the number of actors (also under ``segsearch_ray_summary`` in ``--benchmark-json``).

Select parts with ``-k``: e.g. ``-k S2`` (two shards), ``-k q1`` (single queries). Skips without the cached
CamVid network maps (``python bench/maps_cache.py``) or without ray installed.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import data
from data import TOPK
from segsearch import Query, open_folder
from segsearch.engine.index import empty_like
from segsearch.library.shards import add_shard

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'segsearch[ray]'")
from segsearch.distributed.search import open_on_ray  # noqa: E402 (needs ray)

C = 151
SHARDS = (1, 2, 4, 8)
BATCH = 8  # queries per call in the batched benchmarks
RAY_CPUS = 2  # the development VM's cores; the Ray instance gets this many CPUs and at most this many actors
OBJECT_STORE_BYTES = 300 * 1024**2
#: (S, mode, queries per call) -> median seconds per call, filled by the benchmarks for the summary.
TIMES: dict[tuple, float] = {}
#: S -> number of Ray actors used.
ACTORS: dict[int, int] = {}


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def whole():
    index = data.real_pq_index(C)
    if index is None:
        pytest.skip("no cached CamVid network maps: run python bench/maps_cache.py (or bench/quality.py) first")
    return index


@pytest.fixture(scope="module")
def queries(whole) -> list[Query]:
    """BATCH image queries: the held-out CamVid photos 0..BATCH-1 (photo 0 is data.real_query's)."""
    return [Query.image(m) for m in data.real_query_maps(C)[:BATCH]]


@pytest.fixture(scope="module")
def folders(whole, tmp_path_factory):
    """``folders(S)``: an index folder of the whole index cut into S equal shards (made once per S)."""
    made: dict[int, object] = {}

    def get(S: int):
        if S not in made:
            made[S] = make_sharded_folder(whole, S, tmp_path_factory.mktemp(f"ray-S{S}"))
        return made[S]

    return get


def make_sharded_folder(whole, S: int, out):
    """Write ``whole`` as an index folder ``out`` of S shards of (nearly) equal size, in order; ids = positions."""
    n = len(whole)
    bounds = np.linspace(0, n, S + 1).round().astype(np.int64)
    codes = whole.codes

    def part(lo, hi):
        return empty_like(whole).add_codes(codes[lo:hi], ids=np.arange(lo, hi, dtype=np.int64))

    part(bounds[0], bounds[1]).save(out / "index.segsearch")
    for lo, hi in itertools.pairwise(bounds[1:]):
        add_shard(out, part(lo, hi))
    return out


@pytest.fixture(scope="module")
def ray_session():
    """Ray on this machine for the module, shut down at its end (an instance started before is kept)."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=RAY_CPUS, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def opened(folders, ray_session, whole, queries):
    """``opened(S, mode)``: the folder of S shards opened in-process (``inproc``) or on Ray (``ray``). One Ray
    index is open at a time (its actors stopped before the next S's start); each is checked against the
    in-process search when opened, which is checked against the unsharded index."""
    inproc: dict[int, object] = {}
    current: dict = {}

    def get(S: int, mode: str):
        if S not in inproc:
            inproc[S] = open_folder(folders(S))
            assert len(inproc[S]) == len(whole)
            check_same(inproc[S], whole, queries, f"{S} shards in-process vs the unsharded index")
        if mode == "inproc":
            return inproc[S]
        if current.get("S") != S:
            close_ray(current)
            index = open_on_ray(folders(S), "local", actors=min(S, RAY_CPUS))
            current.update(S=S, index=index)
            ACTORS[S] = len(index.actors)
            check_same(index, inproc[S], queries, f"{S} shards on Ray vs in-process")
        return current["index"]

    yield get
    close_ray(current)


def close_ray(current: dict) -> None:
    if current.get("index") is not None:
        current["index"].close()
    current.clear()


def check_same(index, reference, queries, what: str) -> None:
    """The same ids and distances, one query per call and all in one call."""
    pairs = [(index.search(queries[0], k=TOPK, threads=1), reference.search(queries[0], k=TOPK, threads=1))]
    pairs += zip(index.search(queries, k=TOPK, threads=1), reference.search(queries, k=TOPK, threads=1))
    for q, (got, want) in enumerate(pairs):
        assert np.array_equal(got.ids, want.ids), f"{what}: ids differ (call {q})"
        assert np.array_equal(got.distances, want.distances), f"{what}: distances differ (call {q})"


def summary_rows():
    """(shards, actors, queries per call, in-process, Ray, overhead) per query, as text."""
    for S in SHARDS:
        for nq in (1, BATCH):
            a, b = TIMES.get((S, "inproc", nq)), TIMES.get((S, "ray", nq))
            if a is None and b is None:
                continue
            over = f"{(b - a) * 1e3 / nq:+.3f} ms" if a is not None and b is not None else "-"
            yield str(S), str(ACTORS.get(S, "-")), f"q{nq}", _ms(a, nq), _ms(b, nq), over


def _ms(seconds, nq: int) -> str:
    return "-" if seconds is None else f"{seconds * 1e3 / nq:.3f} ms"


class SummaryPlugin:
    """Prints the table after pytest-benchmark's (and adds it to ``--benchmark-json``)."""

    title = (
        f"Ray fan-out, C={C}, N={data.N_PAPER:,}, k={TOPK}, 1 thread: median per query (q{BATCH}: one call "
        f"of {BATCH} queries, / {BATCH}); overhead = Ray - in-process"
    )
    head = ("shards", "actors", "", "in-process", "Ray", "overhead")

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter):
        rows = list(summary_rows())
        if not rows:
            return
        w = terminalreporter
        w.write_sep("-", self.title)
        widths = [max(len(r[i]) for r in [self.head, *rows]) for i in range(len(self.head))]
        for r in [self.head, *rows]:
            w.write_line("  ".join(f"{v:>{n}}" for v, n in zip(r, widths)))

    def pytest_benchmark_update_json(self, config, benchmarks, output_json):
        output_json["segsearch_ray_summary"] = {
            "title": self.title,
            "head": list(self.head),
            "rows": [list(r) for r in summary_rows()],
        }


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    """Register :class:`SummaryPlugin` for the end of the run."""
    pm = request.config.pluginmanager
    if not pm.has_plugin("segsearch-ray-summary"):
        pm.register(SummaryPlugin(), "segsearch-ray-summary")


# ---------------------------------------------------------------------------------------------- benchmarks
@pytest.mark.large
@pytest.mark.parametrize("nq", (1, BATCH), ids=lambda v: f"q{v}")
@pytest.mark.parametrize("mode", ("inproc", "ray"))
@pytest.mark.parametrize("S", SHARDS, ids=lambda v: f"S{v}")
def test_fanout(measure, benchmark, opened, queries, S, mode, nq):
    """``search(k=10, threads=1)`` of one image query (q1) or BATCH in one call (q8) over S shards, in this
    process or on Ray actors."""
    index = opened(S, mode)
    batch = queries[0] if nq == 1 else queries
    benchmark.extra_info.update(
        shards=S,
        mode=mode,
        queries_per_call=nq,
        N=len(index),
        C=C,
        k=TOPK,
        threads=1,
        actors=len(index.actors) if mode == "ray" else 0,
        assignment=index.assignment if mode == "ray" else None,
        ray_cpus=RAY_CPUS if mode == "ray" else None,
        cpu_count=os.cpu_count(),
    )
    median = measure(("ray_fanout", S, mode, nq), f"fan-out S={S}", index.search, batch, k=TOPK, threads=1)
    if median is not None:
        TIMES[(S, mode, nq)] = median
        benchmark.extra_info["ms_per_query"] = median * 1e3 / nq
