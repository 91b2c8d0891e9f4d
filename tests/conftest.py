import json
import os
import struct

import numpy as np
import pytest

import segsearch
from segsearch.evaluation.synthetic import synthetic_probs
from xvfb import xvfb

#: The core's SIMD levels; a CPU runs a prefix of them (segsearch.supported_simd_levels()).
ALL_SIMD_LEVELS = ("scalar", "avx2", "avx512")


@pytest.fixture(params=ALL_SIMD_LEVELS)
def simd_level(request):
    """Each SIMD level in turn, made the active one for the test; a level this CPU cannot run is a skip that
    names it (so a CPU without AVX2 or AVX-512 reports those kernels as untested)."""
    level, supported = request.param, segsearch.supported_simd_levels()
    if level not in supported:
        pytest.skip(f"SIMD level {level!r} cannot run on this CPU (it runs {', '.join(supported)}): untested here")
    before = segsearch.simd_level()
    segsearch.set_simd_level(level)
    yield level
    segsearch.set_simd_level(before)


def cpu_has_vbmi() -> bool:
    """Whether the CPU has AVX-512 VBMI (numpy's CPU feature table, else /proc/cpuinfo's flags on Linux)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features

        if "AVX512VBMI" in features:
            return bool(features["AVX512VBMI"])
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx512vbmi " in line + " " for line in f)
    except OSError:
        return False


def random_probs(n, C, size, seed):
    """Softmax of Gaussian logits: every class present everywhere (the hard, dense case)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, C, size, size)) * 2.0
    e = np.exp(x - x.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def random_sketch(C, size, seed, n_classes=3, fill=0.5):
    rng = np.random.default_rng(seed)
    lab = np.full((size, size), -1, np.int32)
    cls = rng.choice(C, size=n_classes, replace=False)
    m = rng.random((size, size)) < fill
    lab[m] = rng.choice(cls, size=int(m.sum()))
    return lab


DATASETS = {
    # name: (N, C, size, K)
    "random": (240, 7, 8, 16),
    "realistic": (300, 12, 16, 32),
}


def make_probs(name, seed=0):
    N, C, size, _ = DATASETS[name]
    if name == "random":
        return random_probs(N, C, size, seed)
    return synthetic_probs(N, C, size, seed=seed)


@pytest.fixture(
    scope="session", params=[(d, r) for d in sorted(DATASETS) for r in ("balanced", "l2")], ids=lambda p: "-".join(p)
)
def built(request):
    """(name, probs, index with keep_exact) for each dataset and ranking; train on all, add all."""
    name, ranking = request.param
    N, C, size, K = DATASETS[name]
    probs = make_probs(name)
    index = segsearch.Index(C, size, K, keep_exact=True, ranking=ranking)
    index.train(probs, niter=10, seed=0)
    index.add(probs)
    return name, probs, index


def file_regions(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(end of the header, [start, end) of each array) of an index file, read from its own header (layout:
    segsearch/storage.py's docstring): 20 bytes of prefix, the JSON header, arrays at 64-byte-aligned offsets."""
    hlen = struct.unpack_from("<I", data, 12)[0]
    header_end = 20 + hlen
    data_start = -(-header_end // 64) * 64
    arrays = json.loads(data[20:header_end])["arrays"]
    return header_end, [
        (data_start + e["rel"], data_start + e["rel"] + e["nbytes"]) for e in arrays.values() if e["nbytes"]
    ]


@pytest.fixture(scope="session")
def display():
    """A private 1280x1024 Xvfb display; DISPLAY points at it while the tests run. One for the session: a Tk
    interpreter keeps its connection to a display after its windows are destroyed, and the next Tk event loop
    (any interpreter's) dies of that connection when the display has gone."""
    with xvfb("1280x1024") as disp:
        old = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = disp
        try:
            yield disp
        finally:
            if old is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = old


@pytest.fixture(scope="session")
def small_display():
    """A second private display, with a 1000x600 screen (the user's laptop in issue 19)."""
    with xvfb("1000x600") as disp:
        yield disp
