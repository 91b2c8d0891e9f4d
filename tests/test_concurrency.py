"""The core's OpenMP threads next to torch's, and Ctrl-C during a long search."""
import signal
import subprocess
import sys
import textwrap
import threading

import torch

from segsearch import Index, Query

from conftest import random_probs


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


def test_ctrl_c_interrupts_a_long_search():
    script = textwrap.dedent("""
        import sys, numpy as np
        from segsearch import Index, Query
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
            print("interrupted", flush=True)
            sys.exit(3)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    import time
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 3, (p.returncode, out)
    assert "interrupted" in out
