"""Errors as JSON for API and DICOMweb clients: {"error": {"code", "message", "fields"}}."""

from __future__ import annotations

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from shared.errors import TeleconsultError


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/dicomweb"))


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(TeleconsultError)
    def _domain_error(exc: TeleconsultError) -> ResponseReturnValue:
        return jsonify(exc.to_dict()), exc.http_status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        if not _wants_json():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        message = {413: "The upload is larger than this hub accepts."}.get(
            exc.code or 0, exc.description
        )
        return jsonify({"error": {"code": code, "message": message}}), exc.code or 500
