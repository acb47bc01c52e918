"""The OpenAPI document of ``/api/v1``, generated with apispec from the marshmallow schemas the
views load requests with and answer in. Each view declares its contract with ``@documented``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema

from shared.wire import ErrorSchema

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Contract:
    summary: str
    roles: str = ""
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    answer: type[Schema] | None = None
    many: bool = False
    status: int = 200
    errors: tuple[int, ...] = (400, 401, 403, 404)
    tag: str = "cases"
    extra: dict[str, Any] = field(default_factory=dict)
    # An answer that is not one of the schemas' JSON: its media type (e.g. application/pdf).
    media: str | None = None


CONTRACTS: dict[str, Contract] = {}


def documented(summary: str, **kwargs: Any) -> Callable[[F], F]:
    """Attach the REST contract of a view (used to build ``/openapi.json``)."""

    def mark(view: F) -> F:
        CONTRACTS[f"api.{view.__name__}"] = Contract(summary, **kwargs)
        return view

    return mark


_ERRORS = {
    400: "Invalid input (fields named)",
    401: "Not signed in, or the token expired",
    403: "The caller's role may not do this",
    404: "No such object (or not visible to the caller)",
    409: "State conflict: the case is in another state (current state in fields.status)",
}


def build_spec(app: Flask, version: str = "1.0.0") -> dict[str, Any]:
    spec = APISpec(
        title="Teleconsult hub API",
        version=version,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Hub-and-spoke teleconsultation: cases, routing, queue, SLA, advice."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorSchema)
    by_path: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        contract = CONTRACTS.get(rule.endpoint)
        if contract is None:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            by_path.setdefault(path, {})[method.lower()] = _operation(
                rule.endpoint, contract, rule.arguments
            )
    for path, operations in by_path.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _operation(endpoint: str, c: Contract, arguments: Any) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": endpoint.removeprefix("api."),
        "summary": c.summary,
        "tags": [c.tag],
        "responses": {},
    }
    if c.roles:
        op["description"] = f"Who may call it: {c.roles}."
    if endpoint != "api.issue_token":
        op["security"] = [{"bearer": []}]
    params: list[dict[str, Any]] = [
        {
            "in": "path",
            "name": name,
            "required": True,
            "schema": {"type": "integer" if name.endswith("id") else "string"},
        }
        for name in sorted(arguments)
    ]
    if c.query is not None:
        params.append({"in": "query", "schema": c.query})
    if params:
        op["parameters"] = params
    if c.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": c.body}}}
    answer: dict[str, Any] = {"description": "OK"}
    if c.answer is not None:
        schema: Any = c.answer
        answer["content"] = {
            "application/json": {"schema": {"type": "array", "items": schema} if c.many else schema}
        }
    if c.media is not None:
        body = (
            {"type": "string", "format": "binary"} if "json" not in c.media else {"type": "object"}
        )
        answer["content"] = {c.media: {"schema": body}}
    op["responses"][str(c.status)] = answer
    for code in sorted(set(c.errors)):
        op["responses"][str(code)] = {
            "description": _ERRORS.get(code, "Error"),
            "content": {"application/json": {"schema": "Error"}},
        }
    op.update(c.extra)
    return op
