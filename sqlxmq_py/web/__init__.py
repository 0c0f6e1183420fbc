"""The dashboard and HTTP JSON API of sqlxmq_py (the ``dashboard`` extra: starlette, uvicorn,
jinja2).

``create_app(conninfo, token=...)`` returns an ASGI app to run or mount under any prefix;
``serve(conninfo, ...)`` runs it with uvicorn on 127.0.0.1:8040.
"""

from __future__ import annotations

from .app import create_app, serve

__all__ = ["create_app", "serve"]
