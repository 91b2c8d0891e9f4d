"""Threads: one Index used by many at once (searches during add / add_codes / save, adds racing each other),
the core's OpenMP threads next to torch's, and Ctrl-C during a long search."""

import collections
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import torch

from conftest import random_probs
from segsearch import Index, IndexFormatError, Query

C, SIZE, K = 6, 8, 16
BIG_K = 100_000  # more than any index here holds: every image comes back


@pytest.fixture
def busy_switching():
    """Let threads take the GIL from each other every 10 us instead of every 5 ms, so that they interleave at
    many more points of the Python code (the assertions do not depend on where they do)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def _codebook(seed=0):
    return np.random.default_rng(seed).random((C, K, SIZE, SIZE), dtype=np.float32) / 4


def _code_batches(m, seed=0):
    """m batches of (codes uint8 (b, C), str ids), each larger than the one before and with its own most common
    code (1 or 2 by turns), so that the index's per-class default codes, and with them the rounding of its
    distances, change from one state to the next: a search mixing two states does not equal either."""
    rng = np.random.default_rng(seed)
    out = []
    for j in range(m):
        b = 4 + j
        codes = rng.integers(0, K, (b, C), dtype=np.uint8)
        codes[rng.random((b, C)) < 0.7] = 1 + j % 2
        out.append((codes, [f"img{j}_{i}" for i in range(b)]))
    return out


def _prob_batches(m, seed=0, str_ids=False):
    """m batches of maps (b, C, n, n), for add(); ids None (positions), or str."""
    return [
        (random_probs(4 + j, C, SIZE, seed=seed + j), [f"m{j}_{i}" for i in range(4 + j)] if str_ids else None)
        for j in range(m)
    ]


def _queries():
    lab = np.full((SIZE, SIZE), -1)
    lab[:3], lab[5:, :4] = 2, 4
    return [Query.image(p) for p in random_probs(3, C, SIZE, seed=99)] + [Query.sketch(lab)]


def _key(results) -> bytes:
    """A digest of what a search returned: the ids and the bits of the distances, of each query."""
    h = hashlib.sha256()
    for r in results if isinstance(results, list) else [results]:
        h.update(b"|%d|%s|" % (len(r), r.ids.dtype.str.encode()))
        h.update(r.ids.tobytes())
        h.update(r.distances.tobytes())
    return h.digest()


def _search_key(index, **search) -> bytes | None:
    """_key of a search of _queries(), or None if its subset names an id not (yet) in the index."""
    try:
        return _key(index.search(_queries(), **search))
    except ValueError as e:
        if "is not in the index" not in str(e):
            raise
        return None


def _add(index, batch, kind):
    data, ids = batch
    if kind == "exact":
        index.add(data, ids=ids)
    else:
        index.add_codes(data, ids=ids)


def _fresh(kind, tmp_path):
    """Two identical empty trained indexes (the one the threads share, and the single-threaded reference)."""
    if kind != "exact":
        return [Index.from_codebook(_codebook(), np.zeros((0, C), np.uint8)) for _ in range(2)]
    empty = tmp_path / "empty.segsearch"
    if not empty.exists():  # trained once per test
        Index(C, SIZE, K, keep_exact=True).train(random_probs(32, C, SIZE, seed=7), niter=2).save(empty)
    return [Index.load(empty, mmap=False) for _ in range(2)]


class _States:
    """The states of an index after 1, 2, ... of ``batches`` added one by one, single-threaded: per state the
    ids, the codes and the result of each search in ``searches``."""

    def __init__(self, ref, batches, kind, searches):
        self.ids, self.codes, self.results = [], [], []
        for b in batches:
            _add(ref, b, kind)
            self.ids.append(ref.ids.tolist())
            self.codes.append(ref.codes.copy())
            self.results.append([_search_key(ref, **s) for s in searches])
        self.by_len = {len(ids): j for j, ids in enumerate(self.ids)}
        self.valid = [{r[i] for r in self.results} for i in range(len(searches))]

    def of(self, ids: list):
        """The state whose ids are ``ids``, or None."""
        j = self.by_len.get(len(ids))
        return j if j is not None and self.ids[j] == ids else None


def _release_all(sem):
    sem.release(10_000)  # a thread failed: let the others run to their end


def _searches_during_adds(index, batches, kind, searches, states):
    """Three threads search ``index`` (each of ``searches`` in turn) and read its ids, codes, len, `in` and
    positions, and a fourth searches a subset of the id the next add brings, while a fifth adds ``batches[1:]``;
    returns what saw no state of ``states``, the errors and the number of reads."""
    all_ids, all_codes = states.ids[-1], states.codes[-1]
    progress, done = threading.Semaphore(0), threading.Event()
    bad, errors, count = [], [], collections.Counter()

    def searcher(t):
        try:
            i = 0
            while not done.is_set() or i < 2 * len(searches):
                w = (i + t) % len(searches)
                if _search_key(index, threads=1, **searches[w]) not in states.valid[w]:
                    bad.append(("search", searches[w]["k"], "subset" in searches[w], "exact" in searches[w]))
                ids = index.ids.tolist()
                if states.of(ids) is None:
                    bad.append(("ids", len(ids)))
                codes = index.codes
                if len(codes) not in states.by_len or not np.array_equal(codes, all_codes[: len(codes)]):
                    bad.append(("codes", len(codes)))
                n = len(index)
                if n not in states.by_len:
                    bad.append(("len", n))
                elif all_ids[n - 1] not in index or index.positions([all_ids[n - 1]]).tolist() != [n - 1]:
                    bad.append(("positions", n))
                count[t] += 5
                progress.release()
                i += 1
        except Exception as e:  # reported below
            errors.append(e)
            _release_all(progress)

    def next_id_searcher():
        try:
            q = _queries()[0]
            while not done.is_set():
                n = len(index)
                if n < len(all_ids):  # a subset of the id the next add brings: not in the index, or found
                    try:
                        if index.search(q, k=BIG_K, subset=[all_ids[n]], threads=1).ids.tolist() != [all_ids[n]]:
                            bad.append(("next id", n))
                    except ValueError as e:
                        if "is not in the index" not in str(e):
                            bad.append(("next id", n, str(e)))
                    count["next"] += 1
        except Exception as e:  # reported below
            errors.append(e)

    def writer():
        try:
            for b in batches[1:]:
                for _ in range(4):  # some searches of each state
                    assert progress.acquire(timeout=60)
                _add(index, b, kind)
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            done.set()

    threads = [threading.Thread(target=searcher, args=(t,)) for t in range(3)]
    threads += [threading.Thread(target=next_id_searcher), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return bad, errors, sum(count.values())


@pytest.mark.parametrize("kind", ["codes", "exact"])
def test_searches_during_adds_each_see_one_complete_state(kind, tmp_path, busy_switching):
    """Searches (k < N and k >= N, with and without a subset of ids, one naming an id that a later add brings;
    PQ and exact) and reads of ids, codes, len, `in` and positions by four threads while a fifth adds batches
    (see _searches_during_adds), three times over: each search equals a single-threaded search of some state
    after a whole number of adds (a batch of queries: all of the same state; "not in the index" only before
    the id's add), and so does every other read."""
    batches = _code_batches(60) if kind == "codes" else _prob_batches(18)
    for rnd in range(3):
        index, ref = _fresh(kind, tmp_path)
        _add(index, batches[0], kind)
        if rnd == 0:
            first = index.ids.tolist()
            # an id of the middle batch: "not in the index" before it is added
            late = batches[12][1][0] if kind == "codes" else sum(len(b[0]) for b in batches[:12])
            searches = [
                dict(k=5),
                dict(k=BIG_K),
                dict(k=5, subset=first[::2]),
                dict(k=BIG_K, subset=first[1::3]),
                dict(k=BIG_K, subset=first[:3] + [late]),
            ]
            if kind == "exact":
                searches += [
                    dict(k=5, exact=True),
                    dict(k=BIG_K, exact=True),
                    dict(k=BIG_K, exact=True, subset=first[::3]),
                ]
            states = _States(ref, batches, kind, searches)
        bad, errors, reads = _searches_during_adds(index, batches, kind, searches, states)
        assert not errors, errors
        assert not bad, f"round {rnd}: {len(bad)} of {reads} reads saw no complete state: {bad[:10]}"
        assert index.ids.tolist() == states.ids[-1]
        assert _key(index.search(_queries(), k=BIG_K)) == states.results[-1][1]


def _race_adds(rnd):
    """Four threads add the same 150 ids, in their own orders, one or three at a time, each thread with its own
    codes, to an index of 3,000 other images, while two others ask `in` and positions and search subsets of ids.
    Returns the index, the ids, the successful adds [(thread, positions in the pool)], the codes each thread
    gave and the errors."""
    index = Index.from_codebook(_codebook(), np.zeros((0, C), np.uint8))
    index.add_codes(np.zeros((3000, C), np.uint8), ids=[f"other{i}" for i in range(3000)])
    pool = [f"p{rnd}_{i}" for i in range(150)]
    own_codes = np.random.default_rng(rnd).integers(0, K, (4, len(pool), C), dtype=np.uint8)
    done = threading.Event()
    successes, errors = [], []

    def adder(t):
        try:
            order = [int(i) for i in np.random.default_rng(100 * rnd + t).permutation(len(pool))]
            size = 1 if t % 2 == 0 else 3
            for s in range(0, len(order), size):
                sel = order[s : s + size]
                try:
                    index.add_codes(own_codes[t, sel], ids=[pool[i] for i in sel])
                    successes.append((t, sel))
                except ValueError as e:
                    if "already in the index" not in str(e):
                        raise
        except Exception as e:  # reported below
            errors.append(e)

    def poker(t):
        try:
            r = np.random.default_rng(10 + t)
            q = Query.image(random_probs(1, C, SIZE, seed=t)[0])
            while not done.is_set():
                present = [s for s in (pool[i] for i in r.choice(len(pool), 5)) if s in index]
                if present:
                    index.positions(present)
                    index.search(q, k=3, subset=present, threads=1)
        except Exception as e:  # reported below
            errors.append(e)

    adders = [threading.Thread(target=adder, args=(t,)) for t in range(4)]
    pokers = [threading.Thread(target=poker, args=(t,)) for t in range(2)]
    for t in adders + pokers:
        t.start()
    for t in adders:
        t.join(timeout=120)
    done.set()
    for t in pokers:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in adders + pokers), "a thread hung"
    return index, pool, successes, own_codes, errors


def test_concurrent_adds_of_the_same_ids_add_each_once(busy_switching):
    """Adds racing with the same ids (see _race_adds), 12 times: no id gets in twice; each id is added by
    exactly one add, all of whose images got in, with the codes that add gave; searches and positions agree."""
    others = [f"other{i}" for i in range(3000)]
    for rnd in range(12):
        index, pool, successes, own_codes, errors = _race_adds(rnd)
        ids = index.ids.tolist()
        assert len(ids) == len(set(ids)), f"round {rnd}: {len(ids) - len(set(ids))} duplicate ids got in"
        assert not errors, errors
        added_by = collections.Counter(pool[i] for _, sel in successes for i in sel)
        assert sorted(added_by.items()) == sorted((p, 1) for p in pool)  # every id added once, by one add
        assert ids[: len(others)] == others and sorted(ids[len(others) :]) == sorted(pool)
        assert len(index) == len(others) + len(pool)
        np.testing.assert_array_equal(index.positions(ids), np.arange(len(ids)))
        for t, sel in successes:
            np.testing.assert_array_equal(index.codes[index.positions([pool[i] for i in sel])], own_codes[t, sel])
        everything = index.search(Query.image(random_probs(1, C, SIZE, seed=5)[0]), k=BIG_K)
        assert sorted(everything.ids.tolist()) == sorted(others + pool)


def _saves_during_adds(index, batches, kind, searches, states, folder):
    """A thread saves ``index`` (to new files in ``folder``, and over one file again and again, loading it each
    time) while another adds ``batches``; then every file is loaded and checked against ``states``."""
    folder.mkdir()
    _add(index, batches[0], kind)
    progress, done = threading.Semaphore(0), threading.Event()
    saved, bad, errors = [], [], []

    def check(path):
        try:
            loaded = Index.load(path, mmap=False)
        except IndexFormatError as e:
            bad.append((path.name, "load", str(e)))
            return
        j = states.of(loaded.ids.tolist())
        if j is None:
            bad.append((path.name, "ids", len(loaded)))
        elif not np.array_equal(loaded.codes, states.codes[j]) or any(
            _key(loaded.search(_queries(), **s)) != states.results[j][i] for i, s in enumerate(searches)
        ):
            bad.append((path.name, "contents", j))

    def saver():
        try:
            i = 0
            while not done.is_set() or i < 3:
                path = folder / f"s{i}.segsearch"
                index.save(path)
                saved.append(path)
                index.save(folder / "same.segsearch")
                check(folder / "same.segsearch")
                progress.release()
                i += 1
        except Exception as e:  # reported below
            errors.append(e)
            _release_all(progress)

    def writer():
        try:
            for b in batches[1:]:
                assert progress.acquire(timeout=60)  # a save of each state
                _add(index, b, kind)
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            done.set()

    threads = [threading.Thread(target=saver), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    for path in saved:
        check(path)
    assert not bad, f"{len(bad)} of {2 * len(saved)} saved files hold no complete state: {bad[:10]}"
    assert len(saved) >= len(batches) - 1


@pytest.mark.parametrize("kind", ["codes", "exact"])
def test_saves_during_adds_write_complete_states(kind, tmp_path, busy_switching):
    """Saves during adds (see _saves_during_adds), a few times over: every file loads, passes its checksums,
    and holds the ids, codes and search results of a state after a whole number of adds."""
    batches = _code_batches(30, seed=1) if kind == "codes" else _prob_batches(20, seed=40, str_ids=True)
    searches = [dict(k=BIG_K)] + ([dict(k=BIG_K, exact=True)] if kind == "exact" else [])
    states = _States(_fresh(kind, tmp_path)[0], batches, kind, searches)
    for rnd in range(2 if kind == "codes" else 5):
        _saves_during_adds(_fresh(kind, tmp_path)[0], batches, kind, searches, states, tmp_path / f"r{rnd}")


def test_torch_and_core_in_parallel_threads():
    probs = random_probs(200, 5, 8, seed=0)
    index = Index(5, 8, 16, keep_exact=True)
    index.train(probs, niter=3)
    index.add(probs)
    expect = index.search(Query.image(probs[0]), k=20)
    errors = []

    def torch_work():
        try:
            for _ in range(30):
                a = torch.randn(256, 256)
                (a @ a).sum().item()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def core_work():
        try:
            for _ in range(100):
                r = index.search(Query.image(probs[0]), k=20, threads=2)
                assert r.ids.tolist() == expect.ids.tolist()
                index.search(Query.image(probs[0]), k=5, exact=True, threads=2)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    ts = [threading.Thread(target=torch_work), threading.Thread(target=core_work), threading.Thread(target=core_work)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in ts), "a thread hung"
    assert not errors, errors


@pytest.mark.parametrize("quantized", ["0", "1"])  # SEGSEARCH_QUANTIZED_SCAN: the float and the quantized scan
def test_ctrl_c_interrupts_a_long_search(quantized):
    script = textwrap.dedent("""
        import signal, sys, numpy as np
        from segsearch import Index, Query, _core
        # Python installs its Ctrl-C handler (KeyboardInterrupt) only if SIGINT is not ignored when it starts, and
        # shells start background jobs (`pytest ... &`) with SIGINT ignored, which children inherit: install it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        rng = np.random.default_rng(0)
        C, K, n, N = 40, 256, 32, 2_000_000
        cb = (rng.random((C, K, n, n), dtype=np.float32) / 8)
        codes = rng.integers(0, K, (C, N), dtype=np.uint8)
        index = Index.from_codebook(cb, codes.T)
        lab = np.zeros((n, n), int)
        q = Query.sketch(lab)
        print("ready", flush=True)
        try:
            while True:
                index.search([q] * 64, k=10, threads=1)
        except KeyboardInterrupt:
            print("interrupted", _core.quantized_scan_stats()[0] > 0, flush=True)
            sys.exit(3)
    """)
    env = dict(os.environ, SEGSEARCH_QUANTIZED_SCAN=quantized)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:  # never leave a searching child behind
            p.kill()
            p.wait()
    assert p.returncode == 3, (p.returncode, out)
    assert f"interrupted {quantized == '1'}" in out
