"""``segsearch serve``: a web app and HTTP API over one index folder (see docs/http-api.md).

:func:`~segsearch.serve.app.create_app` builds the FastAPI app; :func:`~segsearch.serve.server.serve` runs it with
uvicorn. Both need the ``serve`` extra: ``pip install "segsearch[serve]"``.
"""

from __future__ import annotations

__all__ = ["create_app", "serve"]


def __getattr__(name):
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(f"module 'segsearch.serve' has no attribute {name!r}")
