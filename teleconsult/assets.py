"""Browser libraries from the npm registry (web/package.json, installed by scripts/assets), and
the project's own scripts that both apps' pages use, served by the hub and the spoke themselves:
pages work on a network with no internet."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, send_from_directory
from flask.typing import ResponseReturnValue

NODE_MODULES = Path(__file__).resolve().parent.parent / "web" / "node_modules"
# What a page may load: a fixed list, never a path from the request.
FILES = {
    "socket.io.min.js": NODE_MODULES / "socket.io-client" / "dist" / "socket.io.min.js",
    # The project's own, shared by the hub's and the clinic's pages.
    "alerts.js": Path(__file__).resolve().parent / "static" / "alerts.js",
}

bp = Blueprint("assets", __name__, url_prefix="/assets")


@bp.get("/<name>")
def asset(name: str) -> ResponseReturnValue:
    path = FILES.get(name)
    if path is None:
        abort(404)
    if not path.exists():
        abort(503, description=f"{name} is not installed: run scripts/assets (npm ci in web/).")
    return send_from_directory(path.parent, path.name, max_age=86400)
