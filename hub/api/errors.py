"""Errors as JSON for API and DICOMweb clients: {"error": {"code", "message", "fields"}}."""

from __future__ import annotations

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from shared.errors import TeleconsultError
from teleconsult.i18n import translate_fields, translate_message


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/dicomweb"))


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(TeleconsultError)
    def _domain_error(exc: TeleconsultError) -> ResponseReturnValue:
        body = exc.to_dict()
        # Pages and API clients that choose a language get validation messages in it.
        body["error"]["message"] = translate_message(exc.message)
        if exc.fields:
            body["error"]["fields"] = translate_fields(exc.fields)
        return jsonify(body), exc.http_status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        if not _wants_json():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        message = {413: "The upload is larger than this hub accepts."}.get(
            exc.code or 0, exc.description
        )
        return jsonify({"error": {"code": code, "message": message}}), exc.code or 500
