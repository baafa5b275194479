"""The JSON API's building blocks: routes that do what they declare, input
parsing that names the bad field, and the OpenAPI document built from the same
route table, so the document cannot drift from the code.

A handler takes one ``Call``::

    async def book(call: Call) -> Response:
        out = await service.book_slot(call.db, call.actor, slot_id=call.body.slot_id)
        return json_response(out, 201)

    routes = [ApiRoute("/appointments", book, methods=["POST"], body=BookIn,
                       response=AppointmentOut, status_code=201, tag="appointments")]

``ApiRoute`` then, in this order and before the handler runs:

1. refuses control characters (U+0000 to U+001F except tab, line feed and
   carriage return) in any path parameter, query parameter or string of the
   JSON body, with 422 naming the field, before any database work;
2. reads the declared body (415 unless JSON, 413 past ``MAX_BODY_BYTES``, 408
   when it does not arrive within ``body_timeout_seconds``) and checks it is
   JSON;
3. finds the actor: ``auth="session"`` needs a full session (else 401),
   ``"partial"`` any live session (the two-factor steps), ``"public"`` none
   (``call.actor`` is None). The instance's ``SessionCache`` answers when it
   may be believed, else the database does. The one database session the
   request uses (``call.db``) is opened on first use and closed after the
   handler (uncommitted work is rolled back);
4. validates the declared body and query models (422 naming the field);
5. with ``floor=True``, pads the answer to ``response_floor_seconds``.

A refusal that carries a ``Denial`` (``Actor.require``/``require_role``) is
written to the audit log as ``denied`` before the error reply, on new and old
handlers alike.

Handlers that still take a Starlette ``Request`` keep working: they get
steps 1 and the denial audit, and parse with ``read_body``/``read_query``
(which apply steps 1, 2 and 4 to what they read).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rtc_server import __version__
from rtc_server.auth.actor import Actor, RequestMeta, record_denial
from rtc_server.auth.models import SessionStage
from rtc_server.auth.sessions import session_actor, session_cookie_name
from rtc_server.auth.timing import floor_for_request, response_floor
from rtc_server.config import Settings
from rtc_server.errors import (
    DomainError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
    UnsupportedMediaType,
)
from rtc_server.types import MAX_ID, DbId

if TYPE_CHECKING:
    from rtc_server.deps import Deps

__all__ = [
    "API_PREFIX", "MAX_BODY_BYTES", "MAX_ID", "ApiRoute", "Call", "DbId", "api_route", "json_response",
    "no_content", "path_int", "read_body", "read_query",
]

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024
#: Control characters no text field accepts (tab, line feed and carriage return are fine).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
CONTROL_MESSAGE = "Must not contain control characters."

Auth = Literal["public", "session", "partial"]
M = TypeVar("M", bound=BaseModel)


# --- input ---------------------------------------------------------------------

def _field_name(loc: Iterable[Any]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def _message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "Invalid value"))
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def validation_error(exc: ValidationError, prefix: tuple[str, ...] = ()) -> InvalidInput:
    return InvalidInput.many(
        (_field_name((*prefix, *e["loc"])), _message(e)) for e in exc.errors()
    )


def _control_in(data: Any) -> str | None:
    """The field (dotted path) of the first string in ``data`` holding a control
    character, or None. Iterative: JSON nesting is bounded by the parser anyway."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if CONTROL_CHARACTERS.search(value):
                return _field_name(path)
        elif isinstance(value, dict):
            for key, item in value.items():
                if CONTROL_CHARACTERS.search(key):
                    return _field_name(path)
                stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack.extend(((*path, str(i)), item) for i, item in enumerate(value))
    return None


def refuse_control_characters(data: Any) -> None:
    """Raise InvalidInput naming the field if any string in ``data`` holds a control character."""
    field = _control_in(data)
    if field is not None:
        raise InvalidInput(field, CONTROL_MESSAGE)


def _check_query(params: QueryParams) -> None:
    for key, value in params.multi_items():
        if CONTROL_CHARACTERS.search(key):
            raise InvalidInput("query", CONTROL_MESSAGE)
        if CONTROL_CHARACTERS.search(value):
            raise InvalidInput(key, CONTROL_MESSAGE)


def _check_path(params: dict[str, Any]) -> None:
    for key, value in params.items():
        if isinstance(value, str) and CONTROL_CHARACTERS.search(value):
            raise InvalidInput(key, CONTROL_MESSAGE)


def _settings_of(request: Request) -> Settings:
    return request.app.state.settings


async def _read_limited(request: Request) -> bytes:
    """The body, refusing (413) as soon as it passes MAX_BODY_BYTES, so a huge
    upload is never held in memory, and (408) when it does not all arrive
    within ``body_timeout_seconds``: a client that stops half-way does not
    hold the connection for ever."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(_settings_of(request).body_timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise PayloadTooLarge()
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout() from None
    return b"".join(chunks)


def _is_json(content_type: str | None) -> bool:
    main = (content_type or "").split(";", 1)[0].strip().lower()
    return main == "application/json" or (main.startswith("application/") and main.endswith("+json"))


async def _read_json(request: Request) -> bytes:
    """The raw body, checked to be JSON (415 otherwise; an empty body is ``{}``)
    and free of control characters in its strings (422 naming the field)."""
    raw = await _read_limited(request)
    if not raw:
        return b"{}"
    if not _is_json(request.headers.get("content-type")):
        raise UnsupportedMediaType()
    try:
        data = pydantic_core.from_json(raw)
    except ValueError:
        raise InvalidInput("body", "The request body must be valid JSON.") from None
    refuse_control_characters(data)
    return raw


def _parse_body(raw: bytes, model: type[M]) -> M:
    """pydantic's own JSON parser: it bounds nesting depth and rejects lone
    surrogates, which would otherwise fail later in ``str.encode``."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            raise InvalidInput("body", "The request body must be valid JSON.") from None
        if errors and errors[0]["type"] == "model_type" and not errors[0]["loc"]:
            raise InvalidInput("body", "The request body must be a JSON object.") from None
        raise validation_error(exc) from None


async def read_body(request: Request, model: type[M]) -> M:
    """Parse a JSON object body into ``model``; raise InvalidInput naming the field
    (for handlers that take a Request; ``Call`` handlers get ``call.body``)."""
    return _parse_body(await _read_json(request), model)


def read_query(request: Request, model: type[M]) -> M:
    _check_query(request.query_params)
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


# --- the call --------------------------------------------------------------------

class _LazySession:
    """The request's one database session, opened when first used: a request
    whose session check was answered by the instance's ``SessionCache`` and
    whose handler reads through a pooled connection never builds one."""

    __slots__ = ("_factory", "session")

    def __init__(self, factory: Callable[[], AsyncSession]) -> None:
        self._factory = factory
        self.session: AsyncSession | None = None

    def get(self) -> AsyncSession:
        if self.session is None:
            self.session = self._factory()
        return self.session

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()


@dataclass
class Call:
    """Everything a handler gets. ``actor`` is None only on ``auth="public"`` routes."""

    request: Request
    lazy_db: _LazySession
    actor: Actor
    meta: RequestMeta
    deps: Deps
    body: Any = None
    query: Any = None

    @property
    def db(self) -> AsyncSession:
        """The request's database session (opened on first use, closed after the handler)."""
        return self.lazy_db.get()

    @property
    def session_opened(self) -> bool:
        """Whether the handler (or the session check) has used ``db`` yet."""
        return self.lazy_db.session is not None

    @property
    def settings(self) -> Settings:
        return self.deps.settings

    @property
    def session_token(self) -> str | None:
        """The session token the client presented (signed in or not)."""
        return self.request.cookies.get(session_cookie_name(self.deps.settings))

    def path_int(self, name: str = "id") -> int:
        """An integer path parameter (404 for one no row can have)."""
        return path_int(self.request, name)

    def path_str(self, name: str, max_length: int = 64) -> str:
        return str(self.request.path_params[name])[:max_length]


def request_meta(request: Request) -> RequestMeta:
    ua = request.headers.get("user-agent")
    return RequestMeta(
        request_id=request.scope.get("state", {}).get("request_id"),
        ip=request.client.host if request.client else None,
        user_agent=ua[:300] if ua else None,
    )


Handler = Callable[[Call], Awaitable[Response]]


def _takes_call(endpoint: Callable[..., Any]) -> bool:
    params = list(inspect.signature(endpoint).parameters.values())
    return len(params) == 1 and (params[0].annotation in (Call, "Call") or params[0].name == "call")


class ApiRoute(Route):
    """A Starlette route that does what it declares (see the module docstring)
    and carries what OpenAPI needs to know."""

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
        auth: Auth = "session",
        floor: bool = False,
        touch: bool = True,
    ) -> None:
        if auth not in ("public", "session", "partial"):
            raise ValueError(f"auth must be public, session or partial, not {auth!r}")
        self.handler = endpoint
        self.takes_call = _takes_call(endpoint)
        super().__init__(API_PREFIX + path, self._handle, methods=list(methods),
                         name=getattr(endpoint, "__name__", None))
        self.endpoint = endpoint
        self.body_model = body
        self.query_model = query
        self.response_model = response
        self.response_list = response_list
        self.status_code = status_code
        self.summary = summary or (endpoint.__doc__ or "").strip().split("\n")[0]
        self.tag = tag
        self.auth = auth
        self.floor = floor
        #: Whether a request counts as activity (pushes the session's idle deadline).
        self.touch = touch

    def _denial_names(self, request: Request) -> tuple[str, str]:
        return f"api.{self.name}", f"{request.method} {request.url.path}"

    async def _handle(self, request: Request) -> Response:
        settings = _settings_of(request)
        with floor_for_request(settings.response_floor_seconds):
            _check_path(request.path_params)
            _check_query(request.query_params)
            if not self.takes_call:
                return await self._legacy(request)
            async with AsyncExitStack() as stack:
                if self.floor:
                    await stack.enter_async_context(response_floor(settings.response_floor_seconds))
                return await self._call(request)

    async def _legacy(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except DomainError as exc:
            if exc.denial is not None:
                action, resource = self._denial_names(request)
                async with request.app.state.session_factory() as db:
                    await record_denial(db, exc, action=action, resource=resource)
            raise

    async def _call(self, request: Request) -> Response:
        deps: Deps = request.app.state.deps
        raw = await _read_json(request) if self.body_model is not None else None
        meta = request_meta(request)
        lazy = _LazySession(deps.session_factory)
        try:
            actor = await self._actor(request, lazy, deps.settings, meta)
            call = Call(
                request=request, lazy_db=lazy, actor=actor, meta=meta, deps=deps,  # type: ignore[arg-type]
                body=_parse_body(raw, self.body_model) if self.body_model is not None and raw else None,
                query=read_query(request, self.query_model) if self.query_model is not None else None,
            )
            try:
                return await self.handler(call)
            except DomainError as exc:
                if exc.denial is not None:
                    action, resource = self._denial_names(request)
                    await record_denial(lazy.get(), exc, action=action, resource=resource)
                raise
        finally:
            await lazy.aclose()

    async def _actor(
        self, request: Request, lazy: _LazySession, settings: Settings, meta: RequestMeta
    ) -> Actor | None:
        if self.auth == "public":
            return None
        token = request.cookies.get(session_cookie_name(settings))
        state = request.app.state
        actor = await session_actor(
            lazy.get, token, settings, meta, touch=self.touch, cache=getattr(state, "session_cache", None),
            writer=getattr(state, "audit_writer", None)) if token else None
        if actor is None:
            raise Unauthorized()
        if self.auth == "session" and actor.stage != SessionStage.full:
            raise Unauthorized()
        return actor


def api_route(path: str, endpoint: Callable[..., Any], **kwargs: Any) -> ApiRoute:
    return ApiRoute(path, endpoint, **kwargs)


async def _no_such_api_route(request: Request) -> Response:
    """Any other ``/api/`` request: 405 naming the methods the path has, else
    404, in the API's JSON error shape (never the static pages' answers)."""
    allowed: set[str] = set()
    for route in _walk(request.app.routes):
        if isinstance(route, ApiRoute) and route.path_regex.match(request.url.path):
            allowed |= route.methods or set()
    if allowed:
        raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
    raise HTTPException(404, "Not found.")


#: Listed after every API route and before the static pages.
api_fallback = Route(
    "/api/{rest:path}", _no_such_api_route, include_in_schema=False,
    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
)


# --- output ----------------------------------------------------------------------

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


# --- OpenAPI ---------------------------------------------------------------------

_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-z]+))?}")


def _path_schema(convertor: str | None) -> dict[str, Any]:
    """A path parameter as the server reads it (``path_int``: 404 past MAX_ID)."""
    if convertor == "int":
        return {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    return {"type": "string", "minLength": 1, "maxLength": 64}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent rather than null: drop the null branch."""
    options = schema.get("anyOf")
    if options:
        kept = [o for o in options if o.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            return {**kept[0], **{k: v for k, v in rest.items() if k != "default" or v is not None}}
    return schema


def _body_required(model: type[BaseModel]) -> bool:
    """An empty body reads as ``{}``: it is optional when ``{}`` is valid."""
    return any(f.is_required() for f in model.model_fields.values())


def openapi_document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """Build OpenAPI 3.1 from every ApiRoute (including those inside Mounts)."""
    api_routes = [r for r in _walk(routes) if isinstance(r, ApiRoute)]
    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = []
    for r in api_routes:
        for m, mode in ((r.body_model, "validation"), (r.query_model, "validation"),
                        (r.response_model, "serialization")):
            if m is not None and (m, mode) not in models:
                models.append((m, mode))  # type: ignore[arg-type]
    refs, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})
    query_names = {r.query_model.__name__ for r in api_routes if r.query_model is not None}
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
                {"name": name, "in": "path", "required": True, "schema": _path_schema(conv or None)}
                for name, conv in _PARAM.findall(r.path)
            ]
            if r.query_model is not None:
                props = schemas[r.query_model.__name__].get("properties", {})
                for name, field in r.query_model.model_fields.items():
                    schema = _without_null(dict(props.get(name, {"type": "string"})))
                    param: dict[str, Any] = {"name": name, "in": "query",
                                             "required": field.is_required(), "schema": schema}
                    if schema.get("description"):
                        param["description"] = schema["description"]
                    params.append(param)
            if params:
                op["parameters"] = params
            if r.body_model is not None:
                op["requestBody"] = {
                    "required": _body_required(r.body_model),
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
    for name in query_names:  # described as parameters, not as a schema
        if not any(f"/{name}\"" in json.dumps(s) for k, s in schemas.items() if k != name):
            schemas.pop(name, None)
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
