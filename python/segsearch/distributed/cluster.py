"""Connecting to Ray, the cluster engine that indexing (:mod:`segsearch.distributed.indexing`) and search
(:mod:`segsearch.distributed.search`) can run on. Ray is optional: ``pip install "segsearch[ray]"``.

Addresses, as Ray takes them: ``"local"`` starts a Ray instance on this machine for this process (it stops
with it); ``"auto"`` connects to the cluster this machine is part of (``ray start --head`` / ``ray start
--address=...`` ran here, or ``RAY_ADDRESS`` is set); ``"HOST:PORT"`` connects to a head node and
``"ray://HOST:10001"`` through Ray Client. A process that already called ``ray.init`` keeps its connection.

Every node must have the same segsearch (and torch) installed, and the photos and the index folder must be on
a path every node reads with the same name (a shared file system): actors open them by path.
"""

from __future__ import annotations

import re
import socket

__all__ = ["connect", "import_ray", "get", "kill_all", "RAY_INSTALL_HINT"]

RAY_INSTALL_HINT = 'pip install "segsearch[ray]"'
_ADDRESS = re.compile(r"(local|auto|ray://[^\s]+|[A-Za-z0-9_.\-\[\]:]+:[0-9]{1,5})")


def import_ray():
    """The ``ray`` module, or an ImportError saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"running on Ray needs the ray package ({e}); install it with: {RAY_INSTALL_HINT}") from None
    return ray


def check_address(address) -> str:
    """``address`` as a string Ray takes, or ValueError saying what is accepted."""
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address.strip()):
        raise ValueError(
            f"Ray address {address!r} is not one of: local (a Ray instance on this machine), auto "
            "(the cluster this machine joined with 'ray start'), HOST:PORT (a head node) or "
            "ray://HOST:PORT (Ray Client)"
        )
    return address.strip()


def connect(address: str = "local", **init_kwargs):
    """Connect this process to Ray at ``address`` (see the module doc) unless it is connected already; returns
    the ``ray`` module. ``init_kwargs`` go to ``ray.init`` for ``"local"`` (e.g. ``num_cpus``). A cluster that
    cannot be reached is a ConnectionError naming the address."""
    address = check_address(address)
    ray = import_ray()
    if ray.is_initialized():
        return ray
    _reachable(address)
    kwargs = dict(init_kwargs) if address == "local" else {}
    kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("log_to_driver", True)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConnectionError(
            f"cannot connect to the Ray cluster at {address!r}: {e}. Start one with "
            "'ray start --head' (then use --ray auto or the address it prints), or use "
            "--ray local"
        ) from None
    return ray


#: Seconds to wait for a head node's port to answer before giving up (Ray itself waits over a minute).
CONNECT_TIMEOUT_S = 10


def _reachable(address: str) -> None:
    """ConnectionError unless the head node at ``HOST:PORT`` / ``ray://HOST:PORT`` accepts a TCP connection within
    :data:`CONNECT_TIMEOUT_S` ("local" and "auto" are not checked: Ray answers those at once)."""
    if address in ("local", "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as e:
        raise ConnectionError(
            f"cannot connect to the Ray cluster at {address!r}: nothing answers there ({e}). "
            "Start one with 'ray start --head' (then use the address it prints), or use --ray "
            "local"
        ) from None


def cluster_resources(ray) -> tuple[int, int]:
    """(CPUs, GPUs) the connected cluster has, whole numbers."""
    res = ray.cluster_resources()
    return int(res.get("CPU", 0)), int(res.get("GPU", 0))


def get(ray, refs, *, timeout=None, what: str = "answer"):
    """``ray.get``, with a time-out said in words and an error raised in an actor (segsearch's own, a bad
    ``--weights`` file, ...) re-raised as itself rather than wrapped. A dead actor's error passes through
    (see :func:`actor_died_errors`): the caller says what it lost."""
    from ..errors import SegsearchError

    try:
        return ray.get(refs, timeout=timeout)
    except ray.exceptions.GetTimeoutError:
        raise SegsearchError(
            f"the Ray actors did not {what} within {timeout} s; the cluster may lack resources (ray status)"
        ) from None
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        raise (cause if isinstance(cause, Exception) else SegsearchError(first_line(e))) from None


def kill_all(ray, actors) -> None:
    """Stop ``actors`` (those already gone are skipped)."""
    for a in actors:
        try:
            ray.kill(a)
        except Exception:  # already gone
            pass


def first_line(e: BaseException) -> str:
    """The first non-blank line of an error's text (Ray's carry tracebacks), at most 300 characters."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(e).__name__


def actor_died_errors(ray) -> tuple[type, ...]:
    """The exceptions Ray raises for a call whose actor died (and could not be restarted in time)."""
    ex = ray.exceptions
    return tuple(
        t
        for t in (
            getattr(ex, "RayActorError", None),
            getattr(ex, "ActorDiedError", None),
            getattr(ex, "ActorUnavailableError", None),
            getattr(ex, "WorkerCrashedError", None),
        )
        if t is not None
    )
