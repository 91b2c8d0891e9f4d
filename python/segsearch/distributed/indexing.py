"""Index on Ray: the photos are segmented (and encoded) by Ray actors, one GPU each where the cluster has GPUs,
one CPU each otherwise; everything else is the local pipeline of :mod:`segsearch.library.build`.

``build_index(..., ray=ADDRESS)`` / ``segsearch index PHOTOS --out IDX --ray ADDRESS`` runs the same steps as
without Ray, in the same order, with the same state database: the training sample is segmented by the actors
(their float16 maps come back to this process, which writes ``work/sample.f16`` and trains the codebook as
locally), then every other photo is segmented *and encoded* by an actor, which loads the codebook checkpoint
``work/codebook.segsearch`` from the shared folder and sends back only each photo's C code bytes. This process
is the only writer: it commits each chunk of photos in one transaction, in photo order whatever order the
actors finish in, and writes ``index.segsearch`` (or, with ``--add``, one new shard) as the local pipeline does.
So the same photos, sample and seed give the same codebook, the same codes and the same index file as a run
without Ray (the chunks are cut on the local pipeline's batch boundaries, so each network batch holds the same
photos).

Faults: a worker process that dies (killed, out of memory, its node lost) is restarted by Ray and its chunk
retried; if Ray gives up, a new actor takes the chunk (up to :data:`MAX_RESUBMITS` times). A chunk is committed
once, after its result arrives, so no photo is lost or stored twice. A killed driver loses at most the chunks in
flight: the same command resumes from the state database, like a local run.

Threads: the network's float rounding depends on how many threads torch runs it with (measured on real photos:
up to 1.5e-5 in a map between 1 and 2 threads), which moves the training sample's float16 maps, so the codebook,
and a photo whose map is that close to the boundary between two centroids gets the other code. Each CPU actor
runs torch with ``threads`` threads and reserves that many CPUs; by default as many as torch uses in this
process (one per core; at most a node's CPUs), so a run on Ray writes the same files, bit for bit, as a run
without Ray on this machine. GPU actors reserve one CPU and one GPU each.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from ..errors import SegsearchError
from ..library.records import encode_records
from .cluster import actor_died_errors, cluster_resources, connect, first_line, get, kill_all

__all__ = ["PhotoEncoder", "EncoderPool"]

#: Ray restarts a dead actor (and retries its call) this many times before a new actor takes the chunk.
MAX_RESTARTS = 2
#: A chunk whose actor died this many times (each after Ray's own restarts) stops the run with an error.
MAX_RESUBMITS = 3
#: Network batches per chunk sent to an actor (at most: fewer when that keeps every actor busy); chunks in
#: flight per actor.
BATCHES_PER_CHUNK = 8
IN_FLIGHT = 2
#: Seconds to wait for the actors to load the network (workers may have to start, weights to be read).
READY_TIMEOUT_S = 900


def _default_threads(ray, cpus: int) -> int:
    """Threads per CPU actor by default: torch's in this process, at most the largest node's CPUs."""
    import torch

    nodes = [int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    return max(1, min(torch.get_num_threads(), max(nodes, default=cpus)))


class PhotoEncoder:
    """A Ray actor: the segmentation network on one device, and the codebook once the run has one.

    ``segmenter``: a ready segmenter (sent by value), else the default network from ``weights`` (checked against
    ``weights_sha256`` when given). ``device``: default cuda when the actor has a GPU, else cpu. ``threads``:
    torch's threads (the network's float rounding depends on them, see the module doc)."""

    def __init__(self, segmenter, weights, weights_sha256, device, size: int, batch: int, workers: int, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.device = str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        if segmenter is None:
            from ..network.segmenter import Segmenter

            segmenter = Segmenter.default(device=self.device, weights=weights, weights_sha256=weights_sha256)
        self.seg, self.size, self.batch, self.workers = segmenter, size, batch, workers
        self._codebook: tuple[str, str, object] | None = None

    def identity(self) -> dict:
        """The network, as the state database records it: {"name", "sha256"}."""
        return {"name": self.seg.name, "sha256": getattr(self.seg, "weights_sha256", None)}

    def _index(self, path: str, fp: str):
        if self._codebook is None or self._codebook[:2] != (path, fp):
            from ..engine.index import Index

            index = Index.load(path, mmap=False)
            if index.codebook_fingerprint() != fp:
                raise SegsearchError(
                    f"{path} is not the codebook this run trained (it changed meanwhile); run the index command again"
                )
            self._codebook = (path, fp, index)
        return self._codebook[2]

    def run(self, paths: list[str], codebook: tuple[str, str] | None = None):
        """Segment ``paths`` in batches: (positions segmented int64, their maps float16 (n, C, s, s) -- or with
        ``codebook`` = (checkpoint path, sha256) their records (:func:`~segsearch.library.records.encode_records`,
        bytes each) --, [(position, error)] not readable)."""
        index = self._index(*codebook) if codebook is not None else None
        done, out, failed = [], [], []
        dtype = np.float32 if index is not None else np.float16
        for idx, maps, bad in self.seg.iter_predict(
            paths, size=self.size, batch_size=self.batch, workers=self.workers, dtype=dtype
        ):
            failed += bad
            if len(idx):
                done.append(idx)
                if index is not None:
                    out += encode_records(index, maps, device=self.device)
                else:
                    out.append(maps)
        if not done:
            C = len(self.seg.classes)
            empty = [] if index is not None else np.zeros((0, C, self.size, self.size), np.float16)
            return np.zeros(0, np.int64), empty, failed
        return np.concatenate(done), out if index is not None else np.concatenate(out), failed


class EncoderPool:
    """The driver's side: :class:`PhotoEncoder` actors on the cluster at ``address``, started on first use.

    ``check_identity(identity)`` is called with each actor's network (the state database checks it is the one
    the folder was started with). ``actors``: how many (default one per GPU, else one per CPU)."""

    def __init__(
        self,
        address: str,
        *,
        actors: int | None,
        threads: int | None,
        segmenter,
        weights,
        weights_sha256,
        device,
        size: int,
        batch: int,
        workers: int,
        check_identity,
    ):
        self._address, self._n, self._threads = address, actors, threads
        self._args = (segmenter, weights, weights_sha256, device, size, batch, workers)
        self._check_identity = check_identity
        self.batch = batch
        self.actors: list = []
        self._make = None

    def _start(self) -> None:
        ray = connect(self._address)
        cpus, gpus = cluster_resources(ray)
        segmenter, weights, sha, device, size, batch, workers = self._args
        use_gpu = gpus > 0 and (device is None or str(device).startswith("cuda"))
        t = self._threads or (1 if use_gpu else _default_threads(ray, cpus))
        have = gpus if use_gpu else cpus // t
        n = self._n if self._n is not None else max(1, have)
        if n > have:
            each = "one GPU" if use_gpu else f"{t} CPU{'s' if t > 1 else ''} (ray_threads, --ray-threads)"
            raise ValueError(
                f"{n} Ray actors asked for, but the cluster has {gpus if use_gpu else cpus} "
                f"{'GPUs' if use_gpu else 'CPUs'} and each actor needs {each}; ask for {have} or fewer "
                "(ray_actors, --ray-actors)"
            )
        opts = {"num_cpus": t, "max_restarts": MAX_RESTARTS, "max_task_retries": MAX_RESTARTS}
        if use_gpu:
            opts["num_gpus"] = 1
        # decoding in the actor's own process on CPU actors; a GPU actor decodes in `workers` processes
        args = (segmenter, weights, sha, device, size, batch, workers if use_gpu else 0, t)
        remote = ray.remote(PhotoEncoder).options(**opts)
        self._make = lambda: remote.remote(*args)
        self.actors = [self._make() for _ in range(n)]
        for identity in get(ray, [a.identity.remote() for a in self.actors], timeout=READY_TIMEOUT_S, what="start"):
            self._check_identity(identity)

    def chunks(self, root: Path, todo: list[tuple], *, codebook: tuple[str, str] | None = None):
        """Segment (and with ``codebook``, encode) the photos ``todo`` [(id, relative path)] on the actors, in
        chunks of whole network batches; yields (chunk rows, positions done, maps or codes, failed) per chunk,
        in ``todo``'s order."""
        import ray

        if not todo:
            return
        if not self.actors:
            self._start()
        per_actor = -(-len(todo) // len(self.actors))  # whole batches, so each network batch holds the local run's
        chunk = self.batch * max(1, min(BATCHES_PER_CHUNK, -(-per_actor // self.batch)))
        parts = [todo[s : s + chunk] for s in range(0, len(todo), chunk)]
        died = actor_died_errors(ray)
        inflight: deque = deque()  # [chunk number, ref, actor slot, actor handle, resubmits]

        def submit(i: int, slot: int, tries: int) -> None:
            actor = self.actors[slot]
            paths = [str(root / rel) for _, rel in parts[i]]
            inflight.append([i, actor.run.remote(paths, codebook), slot, actor, tries])

        nxt = 0
        while nxt < len(parts) and len(inflight) < IN_FLIGHT * len(self.actors):
            submit(nxt, nxt % len(self.actors), 0)
            nxt += 1
        while inflight:
            i, ref, slot, actor, tries = inflight[0]
            try:
                idx, payload, failed = get(ray, ref)
            except died as e:
                if tries + 1 > MAX_RESUBMITS:
                    raise SegsearchError(
                        f"Ray actors died {tries + 1} times on the photos {parts[i][0][1]} .. "
                        f"{parts[i][-1][1]} ({first_line(e)}); nothing is "
                        "lost: run the same command again to resume"
                    ) from None
                if self.actors[slot] is actor:  # not replaced yet by an earlier chunk's failure
                    self.actors[slot] = self._make()
                inflight.popleft()
                submit(i, slot, tries + 1)
                inflight.rotate(1)  # back to the head: chunks are committed in order
                continue
            inflight.popleft()
            idx = np.asarray(idx, np.int64)
            if (
                len(payload) != len(idx)
                or (len(idx) and (idx.min() < 0 or idx.max() >= len(parts[i])))
                or any(not 0 <= j < len(parts[i]) for j, _ in failed)
            ):
                raise SegsearchError(
                    "a Ray actor answered for other photos than it was given (a bug or a mixed "
                    "segsearch version on the cluster); run the same command again to resume"
                )
            yield parts[i], idx, payload, list(failed)
            if nxt < len(parts):
                submit(nxt, slot, 0)
                nxt += 1

    def close(self) -> None:
        """Stop the actors."""
        if not self.actors:
            return
        import ray

        kill_all(ray, self.actors)
        self.actors = []
