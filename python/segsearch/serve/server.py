"""Run the app of :mod:`segsearch.serve.app` with uvicorn: the host and token checks of ``segsearch serve``."""

from __future__ import annotations

import ipaddress
import logging
import socket

from ..errors import OptionError

__all__ = ["serve", "is_loopback", "check_exposure", "LOOPBACK_NAMES"]

#: The Host names a loopback server without a token answers to.
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]"]


def is_loopback(host: str) -> bool:
    """True if ``host`` is only reachable from this machine (127.0.0.0/8, ::1, 'localhost')."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:  # a name: loopback only if everything it resolves to is
        addrs = {a[4][0] for a in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def check_exposure(host: str, token: str | None, insecure_no_token: bool) -> None:
    """An :class:`OptionError` for a server reachable from other machines without a token."""
    if token is None and not insecure_no_token and not is_loopback(host):
        raise OptionError(
            "host",
            f"host {host} lets other machines in, so it needs --token TOKEN (or SEGSEARCH_TOKEN); "
            "--insecure-no-token serves without one",
        )


def serve(
    index_dir,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    insecure_no_token: bool = False,
    log_level: str = "info",
    **app_options,
) -> None:
    """Serve ``index_dir`` at http://HOST:PORT/ until interrupted (``app_options``: :func:`create_app`'s)."""
    try:
        import uvicorn
    except ImportError:
        raise ImportError('segsearch serve needs FastAPI and uvicorn: pip install "segsearch[serve]"') from None
    check_exposure(host, token, insecure_no_token)
    from .app import create_app

    if token is None and is_loopback(host):  # no token: only pages of this machine, by a loopback name (no rebinding)
        app_options.setdefault("allowed_hosts", LOOPBACK_NAMES)
    app = create_app(index_dir, token=token, **app_options)
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO), format="%(levelname)s: %(message)s")
    live = app.state.live
    print(
        f"segsearch: serving {live.index_dir} ({len(live.current)} photos) at http://{_url_host(host)}:{port}/"
        + (" (token required)" if token else ""),
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
