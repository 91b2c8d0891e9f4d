"""pytest-benchmark setup for the segsearch bench: markers, the ``measure`` fixture, the final summary.

Not part of the test run (``pytest tests``); see bench/README.md for the command.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import segsearch
from data import CLASSES, KINDS, N_BIG, N_EXACT, N_PAPER, SCALE, machine_info

HERE = Path(__file__).resolve().parent
#: key -> {"median": seconds or None, "info": extra_info}, filled by ``measure`` for the summary.
RESULTS: dict[tuple, dict] = {}


def pytest_configure(config):
    config.segsearch_machine = machine_info()  # the load average before the benchmarks run
    for name, what in (
        ("exact", "Table 1 sizes: the exact (uncompressed) baseline, PQ with K = 4..256"),
        ("big", f"N = {N_BIG:,} synthetic codes"),
        ("large", f"N = {N_PAPER:,} (the paper-scale index: Sec. 4.3, Fig. 5) and N = {N_BIG:,}"),
        ("faiss", "faiss IndexPQ baseline with the same codebook and codes"),
    ):
        config.addinivalue_line("markers", f"{name}: {what}")
    json_path = getattr(config.option, "benchmark_json", None)
    if json_path:  # pytest-benchmark does not create the folder
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)


def pytest_collection_modifyitems(config, items):
    """Building the paper-scale data the first time takes long: lift pytest-timeout's limit for the bench."""
    if config.pluginmanager.hasplugin("timeout"):
        for item in items:
            if HERE in Path(str(item.fspath)).resolve().parents:
                item.add_marker(pytest.mark.timeout(0))


@pytest.fixture
def measure(benchmark):
    """``measure(key, group, fn, *args, **kwargs)``: time fn with pytest-benchmark in ``group`` and record its
    median and extra_info under ``key`` for the summary. Returns the median in seconds (None when
    benchmarking is disabled)."""

    def run(key, group, fn, *args, **kwargs):
        benchmark.group = group
        benchmark(fn, *args, **kwargs)
        median = benchmark.stats.stats.median if benchmark.stats else None
        RESULTS[key] = {"median": median, "info": benchmark.extra_info}
        return median

    return run


# ---------------------------------------------------------------------------------------------- summary
def _median(key):
    return RESULTS.get(key, {}).get("median")


def _info(key, name):
    return RESULTS.get(key, {}).get("info", {}).get(name)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4g} ms"


def _vs_faiss():
    """(label, ours, faiss, faiss/ours) for each benchmark with a faiss twin."""
    for C in CLASSES:
        pairs = [(f"image query C={C} threads={t}", ("search", C, "image", t), ("faiss", C, t)) for t in (1, 2)]
        pairs.append((f"image LUT C={C} (ours: default eps)", ("lut", C, "image"), ("faiss_lut", C)))
        pairs.append((f"real-derived image query C={C} threads=1", ("real_search", C, "image", 1), ("faiss_real", C)))
        if C == 60:
            pairs += [
                (f"uniform codes, image query C=60 threads=1, {scan} scan", ("uniform", scan), ("faiss_uniform",))
                for scan in ("float", "quantized", "auto")
            ]
        for label, ours, theirs in pairs:
            a, b = _median(ours), _median(theirs)
            if a and b:
                yield label, _ms(a), _ms(b), f"{b / a:.1f}x"


def _targets():
    """(label, measured, target, verdict) for the issue's performance targets."""

    def row(label, value, limit, text, fmt, at_most=True):
        if value is not None:
            ok = value <= limit if at_most else value >= limit
            yield label, fmt(value), text, "ok" if ok else "MISSED"

    for C, limit in zip(CLASSES, (2e-3, 4e-3)):
        yield from row(
            f"image query C={C} threads=1", _median(("search", C, "image", 1)), limit, f"<= {_ms(limit)}", _ms
        )
    yield from row(
        "uniform codes, image query C=60 threads=1", _median(("uniform", "auto")), 1.5e-3, f"<= {_ms(1.5e-3)}", _ms
    )
    for C, limit in zip(CLASSES, (1e-3, 1.5e-3)):  # engine v2: the network's maps of real photos
        yield from row(
            f"real-derived image query C={C} threads=1",
            _median(("real_search", C, "image", 1)),
            limit,
            f"<= {_ms(limit)}",
            _ms,
        )
    for C in CLASSES:
        for drawn in sorted(k[2] for k in RESULTS if k[:2] == ("sketch_drawn", C)):
            limit = 1e-4 + 3e-5 * drawn
            yield from row(
                f"sketch query C={C} threads=1, {drawn} drawn",
                _median(("sketch_drawn", C, drawn)),
                limit,
                f"<= {_ms(limit)}",
                _ms,
            )
    for C in CLASSES:
        for t in (1, 2):
            gbps = _info(("scan", C, t), "gb_per_s")
            yield from row(
                f"scan C={C} threads={t} (GB/s per thread)",
                gbps and gbps / t,
                10.0,
                ">= 10 GB/s",
                lambda v: f"{v:.2f} GB/s",
                at_most=False,
            )
    yield from row(f"N={N_BIG:,} image query C=60 threads=2", _median(("big", "image", 2)), 0.1, "<= 100 ms", _ms)
    mem = next((r["info"] for key, r in RESULTS.items() if key[0] == "big"), {})
    if mem:
        yield from row(
            f"N={N_BIG:,} memory added by the index (process {mem['rss_mb']:.0f} MB)",
            mem["rss_index_mb"],
            mem["rss_target_mb"],
            f"<= {mem['rss_target_mb']:.0f} MB (codes+5%+codebook)",
            lambda v: f"{v:.0f} MB",
        )


def _other():
    """Context figures: eps=0 vs default, real-derived vs synthetic data, exact baseline."""
    for C in CLASSES:
        exact, approx = _median(("eps", C, 0.0)), _median(("eps", C, "default"))
        agree = _info(("eps", C, 0.0), "top10_agreement")
        if exact and approx:
            yield (
                f"image query C={C} threads=1, eps=0 vs default",
                f"{_ms(exact)} vs {_ms(approx)}",
                f"top-10 agreement {agree:.3f}",
                "",
            )
    for C in CLASSES:
        for kind in KINDS:
            real, synth = _median(("real_search", C, kind, 1)), _median(("search", C, kind, 1))
            if real:
                yield (
                    f"{kind} query C={C} threads=1, real-derived vs synthetic data",
                    f"{_ms(real)} vs {_ms(synth) if synth else '-'}",
                    "(augmented CamVid maps)",
                    "",
                )
    for key in sorted((k for k in RESULTS if k[0] == "rerank" and k[3]), key=str):
        _, ranking, kind, depth = key
        base, m = _median(("rerank", ranking, kind, 0)), _median(key)
        if base and m:
            kb = _info(key, "exact_kb_per_photo")
            yield (
                f"re-rank {depth} candidates, {kind} query C=151 {ranking} threads=1",
                f"+{_ms(m - base)}",
                f"(search {_ms(m)} vs {_ms(base)} without)",
                f"{kb:.0f} kB/photo" if kb else "",
            )
    for n in N_EXACT:
        for kind in KINDS:
            m = _median(("exact", n, kind))
            if m:
                yield f"exact {kind} query C=60 N={n:,} threads=1", _ms(m), "(uncompressed baseline)", ""


def _sections():
    """(title, header, rows) of the summary, sections without results left out."""
    for title, head, rows in (
        (
            "vs faiss IndexPQ (same codebook and codes), medians",
            ("", "segsearch", "faiss", "faiss/segsearch"),
            _vs_faiss(),
        ),
        ("targets", ("", "measured", "target", ""), _targets()),
        ("other", None, _other()),
    ):
        rows = list(rows)
        if rows:
            yield title, head, rows


def _header() -> str:
    return f"segsearch bench summary: scale {SCALE}, N={N_PAPER:,}, simd {segsearch.simd_level()}"


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's tables
def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    w = terminalreporter
    w.write_sep("=", _header())
    if SCALE != 1:
        w.write_line("(scaled run: N-dependent figures are not comparable with the targets)")
    for title, head, rows in _sections():
        w.write_sep("-", title)
        table = ([head] if head else []) + rows
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        for r in table:
            w.write_line(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip())


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Add the summary tables to ``--benchmark-json``."""
    output_json["segsearch_summary"] = {
        "title": _header(),
        "scale": SCALE,
        "sections": {t: [list(r) for r in rows] for t, _, rows in _sections()},
    }
    output_json["segsearch_machine"] = {"before": config.segsearch_machine, "after": machine_info()}
