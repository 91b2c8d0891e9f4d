"""A load test of ``segsearch serve`` (issue 20): N clients send sketch queries while M clients keep uploading
photos to be segmented; prints p50/p99/max latency and errors per kind. Asserts nothing.

    python bench/serve_load.py [--clients 16] [--queries 25] [--uploaders 2] [--index DIR] [--json OUT]

The index is the shared CamVid training photos (367), indexed once with ``segsearch index`` (the default network,
on the CPU: a few minutes) into ``bench/.cache/serve-camvid-index``; the uploads are the CamVid validation photos,
which are not in the index. The server is a real ``segsearch serve`` process on a free loopback port; the clients
are threads of this process, each with its own connection (HTTP/1.1 keep-alive), sending JSON sketch queries of
2-4 random class boxes (sky, building, road, tree, car, person, ...; k = 10). Each uploader posts one photo at a
time (multipart, as the page does) and starts the next when the answer is back. The sketch clients start once
the uploads run, and the uploads stop when the sketch clients are done.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
CAMVID = HERE.parent.parent / "shared" / "data" / "camvid"
DEFAULT_INDEX = HERE / ".cache" / "serve-camvid-index"
SKETCH_CLASSES = ["sky", "building", "road", "tree", "car", "person", "sidewalk", "grass", "wall", "fence"]


def ensure_index(d: Path) -> Path:
    if not (d / "index.segsearch").is_file():
        d.parent.mkdir(parents=True, exist_ok=True)
        print(f"indexing {CAMVID / 'train' / 'images'} into {d} (once) ...", file=sys.stderr, flush=True)
        subprocess.run(
            [sys.executable, "-m", "segsearch.cli", "index", str(CAMVID / "train" / "images"), "--out", str(d)],
            check=True,
        )
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: Path, port: int, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "segsearch.cli", "serve", str(index), "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/api/health")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stdout.read()}")
    proc.kill()
    raise RuntimeError("the server did not answer within 120 s")


def sketch_query(rng: random.Random) -> bytes:
    draw = []
    for _ in range(rng.randint(2, 4)):
        x0, y0 = rng.uniform(0, 0.7), rng.uniform(0, 0.7)
        draw.append(
            {
                "class": rng.choice(SKETCH_CLASSES),
                "box": [x0, y0, x0 + rng.uniform(0.1, 0.3), y0 + rng.uniform(0.1, 0.3)],
            }
        )
    return json.dumps({"k": 10, "draw": draw}).encode()


def multipart(photo: Path) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    body = (
        (
            f'--{b}\r\nContent-Disposition: form-data; name="query"\r\n\r\n{{"k": 10}}\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="image"; filename="{photo.name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo.read_bytes()
        + f"\r\n--{b}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={b}"


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = {"sketch": [], "upload": []}
        self.errors: dict[str, list[str]] = {"sketch": [], "upload": []}

    def add(self, kind: str, ms: float, error: str | None) -> None:
        with self.lock:
            (self.errors[kind].append(error) if error else self.times[kind].append(ms))


def post(conn: http.client.HTTPConnection, body: bytes, ctype: str) -> tuple[float, str | None]:
    t0 = time.perf_counter()
    try:
        conn.request("POST", "/api/search", body=body, headers={"Content-Type": ctype})
        r = conn.getresponse()
        data = r.read()
        ms = (time.perf_counter() - t0) * 1000
        if r.status != 200:
            return ms, f"{r.status} {data[:200]!r}"
        if not json.loads(data)["results"]:
            return ms, "no results"
        return ms, None
    except (OSError, http.client.HTTPException, ValueError) as e:
        conn.close()
        return (time.perf_counter() - t0) * 1000, f"{type(e).__name__}: {e}"


def sketch_client(port: int, n: int, seed: int, rec: Recorder, start: threading.Event) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start.wait()
    for _ in range(n):
        ms, err = post(conn, sketch_query(rng), "application/json")
        rec.add("sketch", ms, err)
    conn.close()


def upload_client(port: int, photos: list[Path], seed: int, rec: Recorder, stop: threading.Event) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while not stop.is_set():
        body, ctype = multipart(rng.choice(photos))
        ms, err = post(conn, body, ctype)
        rec.add("upload", ms, err)
    conn.close()


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs)) - 1))]


def run(args) -> dict:
    index = ensure_index(Path(args.index))
    port = free_port()
    server = start_server(index, port, args.server_args)
    try:
        photos = sorted((CAMVID / "val" / "images").glob("*.jpg"))
        rec = Recorder()
        # one warm-up photo query loads the network, as a first user would; not counted
        body, ctype = multipart(photos[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        warm_ms, err = post(conn, body, ctype)
        conn.close()
        if err:
            raise RuntimeError(f"warm-up photo query failed: {err}")
        stop, start = threading.Event(), threading.Event()
        uploaders = [
            threading.Thread(target=upload_client, args=(port, photos, 100 + i, rec, stop))
            for i in range(args.uploaders)
        ]
        clients = [
            threading.Thread(target=sketch_client, args=(port, args.queries, i, rec, start))
            for i in range(args.clients)
        ]
        for t in uploaders + clients:
            t.start()
        time.sleep(1.0 if args.uploaders else 0)  # the uploads are running when the sketches start
        t0 = time.perf_counter()
        start.set()
        for t in clients:
            t.join()
        wall = time.perf_counter() - t0
        stop.set()
        for t in uploaders:
            t.join()
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    out = {
        "clients": args.clients,
        "queries_per_client": args.queries,
        "uploaders": args.uploaders,
        "server_args": args.server_args,
        "cores": len(os.sched_getaffinity(0)),
        "warm_up_photo_ms": round(warm_ms, 1),
        "sketch_wall_s": round(wall, 2),
    }
    for kind in ("sketch", "upload"):
        xs = rec.times[kind]
        out[kind] = {
            "answered": len(xs),
            "errors": len(rec.errors[kind]),
            "first_errors": rec.errors[kind][:3],
            "p50_ms": round(pct(xs, 50), 1),
            "p99_ms": round(pct(xs, 99), 1),
            "max_ms": round(max(xs), 1) if xs else None,
            "mean_ms": round(statistics.fmean(xs), 1) if xs else None,
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--queries", type=int, default=25, help="sketch queries per client")
    p.add_argument("--uploaders", type=int, default=2)
    p.add_argument("--index", default=str(DEFAULT_INDEX))
    p.add_argument("--json", default=None, help="also write the figures to this file")
    p.add_argument("server_args", nargs="*", help="more 'segsearch serve' options, after --")
    args = p.parse_args()
    out = run(args)
    s, u = out["sketch"], out["upload"]
    print(
        f"{out['clients']} clients x {out['queries_per_client']} sketch queries, {out['uploaders']} uploading "
        f"({out['cores']} cores): sketch p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, max {s['max_ms']} ms, "
        f"{s['errors']} errors of {s['answered'] + s['errors']}; uploads p50 {u['p50_ms']} ms, p99 {u['p99_ms']} ms, "
        f"{u['answered']} answered, {u['errors']} errors"
    )
    if out["sketch"]["first_errors"] or out["upload"]["first_errors"]:
        print("first errors:", out["sketch"]["first_errors"], out["upload"]["first_errors"])
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
