"""The JSON API's building blocks: routes that describe themselves, body and
query parsing that names the bad field, and the OpenAPI document built from
the same route table, so the document cannot drift from the code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rtc_server import __version__
from rtc_server.errors import InvalidInput, NotFound, PayloadTooLarge

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024
#: Largest id a database column holds (BIGINT); larger ids cannot exist.
MAX_ID = 2**63 - 1
#: A row id in a query or body: positive and storable (a 25-digit number is a 422, not a 500).
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]

M = TypeVar("M", bound=BaseModel)


class ApiRoute(Route):
    """A Starlette route that also carries what OpenAPI needs to know."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Sequence[str],
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        response_list: bool = False,
        status_code: int = 200,
        summary: str = "",
        tag: str = "general",
        auth: str = "session",
    ) -> None:
        super().__init__(API_PREFIX + path, endpoint, methods=list(methods))
        self.body_model = body
        self.query_model = query
        self.response_model = response
        self.response_list = response_list
        self.status_code = status_code
        self.summary = summary or (endpoint.__doc__ or "").strip().split("\n")[0]
        self.tag = tag
        self.auth = auth


def api_route(path: str, endpoint: Callable[..., Any], **kwargs: Any) -> ApiRoute:
    return ApiRoute(path, endpoint, **kwargs)


def _field_name(loc: Iterable[Any]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def _message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "Invalid value"))
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def validation_error(exc: ValidationError, prefix: tuple[str, ...] = ()) -> InvalidInput:
    return InvalidInput.many(
        (_field_name((*prefix, *e["loc"])), _message(e)) for e in exc.errors()
    )


async def _read_limited(request: Request) -> bytes:
    """The body, refusing (413) as soon as it passes MAX_BODY_BYTES, so a huge
    upload is never held in memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, model: type[M]) -> M:
    """Parse a JSON object body into ``model``; raise InvalidInput naming the field.

    pydantic's own JSON parser is used: it bounds nesting depth and rejects
    lone surrogates, which would otherwise fail later in ``str.encode``.
    """
    raw = await _read_limited(request)
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            raise InvalidInput("body", "The request body must be valid JSON.") from None
        if errors and errors[0]["type"] == "model_type" and not errors[0]["loc"]:
            raise InvalidInput("body", "The request body must be a JSON object.") from None
        raise validation_error(exc) from None


def read_query(request: Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise validation_error(exc) from None


def path_int(request: Request, name: str = "id") -> int:
    value = request.path_params.get(name)
    try:
        number = value if isinstance(value, int) else int(str(value))
    except ValueError:
        raise InvalidInput(name, "Must be a whole number.") from None
    if not 0 <= number <= MAX_ID:
        raise NotFound()
    return number


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, BaseModel):
            return content.model_dump_json().encode()
        if isinstance(content, list) and content and isinstance(content[0], BaseModel):
            return ("[" + ",".join(m.model_dump_json() for m in content) + "]").encode()
        return json.dumps(content, separators=(",", ":"), default=str).encode()


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JsonResponse(content, status_code=status, headers=headers)


def no_content() -> Response:
    return Response(status_code=204)


_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?}")


def openapi_document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """Build OpenAPI 3.1 from every ApiRoute (including those inside Mounts)."""
    api_routes = [r for r in _walk(routes) if isinstance(r, ApiRoute)]
    models: list[tuple[type[BaseModel], str]] = []
    for r in api_routes:
        for m, mode in ((r.body_model, "validation"), (r.response_model, "serialization")):
            if m is not None and (m, mode) not in models:
                models.append((m, mode))  # type: ignore[arg-type]
    refs, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    error_ref = {"$ref": "#/components/schemas/Error"}
    for r in api_routes:
        path = _PARAM.sub(r"{\1}", r.path)
        for method in sorted((r.methods or set()) - {"HEAD"}):
            op: dict[str, Any] = {
                "summary": r.summary,
                "tags": [r.tag],
                "operationId": f"{method.lower()}_{path.strip('/').replace('/', '_')}",
                "responses": {
                    "4XX": {
                        "description": "Error",
                        "content": {"application/json": {"schema": error_ref}},
                    }
                },
            }
            params = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in _PARAM.findall(r.path)
            ]
            if r.query_model is not None:
                for name, field in r.query_model.model_fields.items():
                    params.append(
                        {"name": name, "in": "query", "required": field.is_required(),
                         "schema": {"type": "string"}}
                    )
            if params:
                op["parameters"] = params
            if r.body_model is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {
                        "schema": refs[(r.body_model, "validation")]}},
                }
            ok: dict[str, Any] = {"description": "Success"}
            if r.response_model is not None:
                schema = refs[(r.response_model, "serialization")]
                if r.response_list:
                    schema = {"type": "array", "items": schema}
                ok["content"] = {"application/json": {"schema": schema}}
            op["responses"][str(r.status_code)] = ok
            if r.auth != "public":
                op["security"] = [{"session": []}]
            paths.setdefault(path, {})[method.lower()] = op
    schemas["Error"] = {
        "type": "object",
        "properties": {"error": {"type": "object", "properties": {
            "code": {"type": "string"}, "message": {"type": "string"},
            "request_id": {"type": "string"},
            "fields": {"type": "array", "items": {"type": "object", "properties": {
                "field": {"type": "string"}, "message": {"type": "string"}}}},
        }, "required": ["code", "message"]}},
        "required": ["error"],
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "rtc_server API", "version": __version__},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "rtc_session"}},
        },
    }


def _walk(routes: Iterable[BaseRoute]) -> Iterable[BaseRoute]:
    for r in routes:
        yield r
        sub = getattr(r, "routes", None)
        if sub:
            yield from _walk(sub)
