"""One decorator per API route: it registers the Flask route, validates the
body and query with the route's pydantic models, and records the operation,
from which `openapi_document` builds the OpenAPI 3.1 document.

Why not a library (spectree, flask-openapi3, apiflask)? Each either answers
validation errors as 422 in its own shape or replaces Flask's routing; the
contract wants 400 naming the field and plain blueprints. pydantic does the
validating and the schemas; this module only wires them to routes (≈150 lines).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter
from werkzeug.routing import ValidationError as RoutingValidationError

from ...domain import statuses
from ...domain.limits import MAX_JSON_VALUES
from ...jobs.query_params import unique_values
from ..audit_trail import PARSED_BODY_KEY
from . import json_input, schemas

REF = "#/components/schemas/{model}"


class ApiError(HTTPException):
    """An answer other than success: status, a machine-readable `error`, a message, and extras."""

    code: int  # always set, unlike HTTPException's

    def __init__(self, code: int, error: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.code = code
        self.error = error
        self.message = message
        self.extra = extra
        self.headers = headers or {}  # e.g. Allow on a 405, Retry-After on a 429

    def get_response(self, environ=None, scope=None):
        response = jsonify({"error": self.error, "message": self.message, **self.extra})
        response.status_code = self.code
        response.headers.update(self.headers)
        return response


@dataclass
class Operation:
    method: str
    rule: str
    endpoint: str
    summary: str
    description: str
    tag: str
    body: type[BaseModel] | None
    body_required: bool
    query: type[BaseModel] | None
    responses: dict[int, tuple[str, type[BaseModel] | None]]
    security: list[dict[str, list]] = field(default_factory=list)
    media_type: str = "application/json"
    also_as: tuple[str, ...] = ()  # further media types a success may answer in (the text, as a string)


OPERATIONS: list[Operation] = []
ERROR_TEXT = {
    400: "Bad input; `field` names it.",
    401: "Missing or wrong credentials.",
    403: (
        "Refused: the role is too low (`forbidden`), the deployment is read-only (`read_only`), or the request "
        "comes from another site (`cross_site`)."
    ),
    404: "No such job (or webhook, or delivery).",
    409: "Refused: the job's current status does not allow it (`status` says which).",
    413: "Body too large.",
    415: "Every write must say Content-Type: application/json, an empty body too.",
    503: "The database does not answer; retry.",
}


def field_path(location: tuple) -> str:
    """("jobs", 3, "type") → "jobs[3].type"."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def invalid(error: ValidationError, prefix: tuple = (), *, tagged: bool = False) -> ApiError:
    """400 naming the first bad field. `tagged`: the error of one member of a union told
    apart by `kind`, whose location starts with the member's tag (or, without one, names `kind`)."""
    first = error.errors(include_url=False)[0]
    location = tuple(part for part in first["loc"] if not str(part).startswith("function-"))
    if tagged:
        location = ("kind",) if first["type"].startswith("union_tag") else location[1:]
    location = prefix + location
    name = field_path(location) or "body"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    return ApiError(400, "invalid", f"{name}: {message}", field=name)


def refused(error: statuses.TransitionRefused | statuses.JobNotFound) -> ApiError:
    """A command's refusal: 404 for no such job, 409 with the job's status (`lease_lost` for a stale token)."""
    if isinstance(error, statuses.JobNotFound):
        return ApiError(404, "not_found", str(error))
    kind = "lease_lost" if isinstance(error, statuses.LeaseLost) else "conflict"
    return ApiError(409, kind, str(error), status=str(error.status))


@contextmanager
def invalid_query() -> Iterator[None]:
    """A query the store refuses (a foreign cursor, a filter too wide) is a 400 naming the field."""
    from ...jobs import BadQuery

    try:
        yield
    except BadQuery as error:
        raise ApiError(400, "invalid", f"{error.field}: {error}", field=error.field) from None


def json_body(max_values: int | None = MAX_JSON_VALUES) -> Any:
    """The request's JSON, strictly (see json_input): finite numbers, valid Unicode, bounded nesting,
    at most `max_values` values (None: as many as the body limit holds)."""
    raw = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # A chunked body is cut at the limit without a word (werkzeug's LimitedStream reads up to
        # it and stops): what was cut off is a body too large, not JSON that ends early.
        raise ApiError(413, "too_large", f"the body is larger than the limit of {limit} bytes")
    if not raw.strip():
        return None
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json")
    try:
        body = json_input.loads(raw, max_depth=current_app.config["JOBWARDEN_MAX_JSON_DEPTH"], max_values=max_values)
    except json_input.BadJson as error:
        raise ApiError(400, "invalid", f"body: {error}", field="body") from None
    request.environ[PARSED_BODY_KEY] = body
    return body


def _query_values(model: type[BaseModel]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name not in request.args:
            continue
        if getattr(info.annotation, "__origin__", None) is list:
            values[name] = unique_values(name, request.args.getlist(name))
        elif request.args.get(name) != "":
            values[name] = request.args.get(name)
    return values


def operation(
    bp: Blueprint,
    method: str,
    rule: str,
    *,
    summary: str,
    responses: dict[int, type[BaseModel] | None | tuple[str, type[BaseModel] | None]],
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    query: type[BaseModel] | None = None,
    errors: tuple[int, ...] = (),
    security: list[dict[str, list]] | None = None,
    media_type: str = "application/json",
    also_as: tuple[str, ...] = (),
    max_json_values: int | None = MAX_JSON_VALUES,
) -> Callable:
    """Route `method rule` on `bp`; the view gets `body=` and `query=` as validated models (the body
    of at most `max_json_values` JSON values). `also_as`: media types a success may answer in
    besides `media_type` (a query asked for them), documented as text."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def validated(**path: Any):
            kwargs: dict[str, Any] = dict(path)
            if query is not None:
                with invalid_query():
                    values = _query_values(query)
                try:
                    kwargs["query"] = query.model_validate(values)
                except ValidationError as error:
                    raise invalid(error) from None
            if body is not None or method != "GET":
                data = json_body(max_json_values) if method != "GET" else None
                if body is not None:
                    if data is None and not body_required:
                        data = {}
                    if not isinstance(data, dict):
                        raise ApiError(400, "invalid", "body: must be a JSON object", field="body")
                    try:
                        kwargs["body"] = body.model_validate(data)
                    except ValidationError as error:
                        raise invalid(error) from None
            return view(**kwargs)

        bp.add_url_rule(rule, view.__name__, validated, methods=[method])
        documented = {
            code: answer if isinstance(answer, tuple) else ("OK", answer) for code, answer in responses.items()
        }
        for code in (*errors, *((400,) if body is not None or query is not None else ())):
            documented.setdefault(code, (ERROR_TEXT[code], schemas.Error))
        documented.setdefault(503, (ERROR_TEXT[503], schemas.Error))
        if method != "GET":
            documented.setdefault(415, (ERROR_TEXT[415], schemas.Error))
            documented.setdefault(413, (ERROR_TEXT[413], schemas.Error))
            documented.setdefault(400, ("Bad input; `field` names it.", schemas.Error))
        doc = (view.__doc__ or "").strip()
        OPERATIONS.append(
            Operation(
                method=method,
                rule=(bp.url_prefix or "") + rule,
                endpoint=f"{bp.name}.{view.__name__}",
                summary=summary,
                description=doc,
                tag=bp.name,
                body=body,
                body_required=body_required,
                query=query,
                responses=documented,
                security=security or [],
                media_type=media_type,
                also_as=also_as,
            )
        )
        return view  # still callable as written: the batch of reports applies the single ones

    return decorate


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def openapi_document(*, title: str, version: str) -> dict[str, Any]:
    models = {op.body for op in OPERATIONS if op.body} | {
        model for op in OPERATIONS for _, model in op.responses.values() if model
    }
    mode: dict[type[BaseModel], JsonSchemaMode] = {
        model: "validation" if any(model is op.body for op in OPERATIONS) else "serialization" for model in models
    }
    keys, definitions = models_json_schema(
        [(model, mode[model]) for model in sorted(models, key=lambda m: m.__name__)],
        ref_template=REF,
    )
    refs = {model: keys[(model, mode[model])] for model in models}
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {
            "operationId": op.endpoint.replace(".", "_"),
            "summary": op.summary,
            "tags": [op.tag],
            "responses": {
                str(code): (
                    _response(description, model, refs, op.media_type, op.also_as)
                    if code < 400
                    else _response(description, model, refs, "application/json")
                )
                for code, (description, model) in sorted(op.responses.items())
            },
        }
        if op.description:
            entry["description"] = op.description
        parameters = _path_parameters(op.rule) + (_query_parameters(op.query) if op.query else [])
        if parameters:
            entry["parameters"] = parameters
        if op.body is not None:
            entry["requestBody"] = {
                "required": op.body_required,
                "content": {"application/json": {"schema": refs[op.body]}},
            }
        if op.security:
            entry["security"] = op.security
        paths.setdefault(_openapi_path(op.rule), {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Jobwarden's public and internal (worker) API. See CONTRACT.md.",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "internalKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer $JOBWARDEN_INTERNAL_API_KEY",
                },
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer jw_… (an API token: POST /api/tokens).",
                },
                "operator": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "A user's NAME:password, or any name with JOBWARDEN_ADMIN_PASSWORD.",
                },
            },
        },
    }


def _response(
    description: str, model: type[BaseModel] | None, refs: dict, media_type: str, also_as: tuple[str, ...] = ()
) -> dict[str, Any]:
    if model is None:
        return (
            {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}
            if media_type != "application/json"
            else {"description": description}
        )
    content = {media_type: {"schema": refs[model]}} | {other: {"schema": {"type": "string"}} for other in also_as}
    return {"description": description, "content": content}


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        }
        for name in re.findall(r"<[^:<>]+:([^<>]+)>", rule)
    ]


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    definitions = schema.get("$defs", {})
    parameters = []
    for name, prop in schema["properties"].items():
        prop = _inline(prop, definitions)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in schema.get("required", []),
            "schema": prop,
        }
        if prop.get("type") == "array":
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return parameters


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    """Query parameters carry their schema inline (their enums live in $defs)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(definitions[node["$ref"].rsplit("/", 1)[-1]], definitions)
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node


class JobIdConverter(BaseConverter):
    """`<job_id:…>`: a positive 64-bit id; anything else is simply not a route (404), never a database error."""

    regex = r"[1-9][0-9]{0,18}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > 2**63 - 1:
            raise RoutingValidationError()
        return number

    def to_url(self, value: int) -> str:
        return str(int(value))
