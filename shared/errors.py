"""Domain errors. Raised anywhere; turned into HTTP, Socket.IO or DICOM answers at the edges."""

from __future__ import annotations

from typing import Any


class TeleconsultError(Exception):
    """Base of every error a user may be shown. ``code`` is stable; ``message`` is for people."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return {"error": body}


class InvalidInput(TeleconsultError):
    code = "invalid"
    http_status = 400


class NotAuthenticated(TeleconsultError):
    code = "not_authenticated"
    http_status = 401


class Forbidden(TeleconsultError):
    code = "forbidden"
    http_status = 403


class NotFound(TeleconsultError):
    code = "not_found"
    http_status = 404


class Conflict(TeleconsultError):
    code = "conflict"
    http_status = 409


class TooLarge(TeleconsultError):
    code = "too_large"
    http_status = 413


class UnsupportedMediaType(TeleconsultError):
    code = "unsupported_media_type"
    http_status = 415
