"""The gateway's HTTP entrypoint, built on nameko's ``http``.

:func:`route` declares one API route. Around the handler it:

- accepts the caller's ``X-Request-ID`` when it is safe (at most 128 of
  ``[A-Za-z0-9._-]``) or makes a UUID, puts it in the worker's context data
  before the worker starts (so every RPC carries it) and returns it;
- refuses bodies over 1 MB (413) before reading them, parses JSON (400 for
  bad UTF-8 or bad JSON, 415 for another content type) and loads it with
  the route's marshmallow schema (422 with field errors);
- authenticates the caller when the route needs it (see
  :class:`gateway.dependencies.RequestContext`);
- turns every error into an RFC 9457 problem document. No input makes the
  gateway answer 500: an unexpected error is logged with its traceback and
  answered 502.

The web server's own routing answers (unknown path 404, wrong method 405)
are problem documents too, and every request writes one access log line.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from eventlet.event import Event
from marshmallow import Schema, ValidationError
from nameko.exceptions import ContainerBeingKilled, RemoteError
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Request, Response

from gateway.problems import (
    GatewayFault,
    MalformedRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    UpstreamError,
    from_http_exception,
    from_platform_error,
    problem_response,
)
from plumbing.errors import PlatformError, ServiceUnavailable, ValidationFailed
from plumbing.identity import CONTEXT_KEY, REQUEST_ID_KEY

log = structlog.get_logger()

MAX_BODY_BYTES = 1024 * 1024
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
JSON_TYPE = "application/json"


def accept_request_id(value: str | None) -> str:
    """The caller's request id if it is safe to log and pass on, else a new one."""
    if value and _REQUEST_ID.match(value):
        return value
    return str(uuid.uuid4())


_REQUEST_ID_ENVIRON_KEY = "cpd.request_id"


def request_id_of(request: Request) -> str:
    """The request id :class:`ApiRoute` gave this request (kept in its WSGI
    environ, which every :class:`Request` over the same call shares)."""
    rid = request.environ.get(_REQUEST_ID_ENVIRON_KEY)
    if rid is None:
        rid = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.environ[_REQUEST_ID_ENVIRON_KEY] = rid
    return str(rid)


class RoutedRequest(Request):
    """A request with the values its route matched in the path, as nameko's
    own WSGI app gives them to the handler."""

    path_values: dict[str, Any]


class GatewayWsgiApp(WsgiApp):
    """nameko's WSGI app, answering routing errors with problem documents."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        started = time.monotonic()
        request = RoutedRequest(environ, shallow=True)
        rid = request_id_of(request)
        try:
            adapter = self.url_map.bind_to_environ(environ)
            provider, values = adapter.match()
        except RequestRedirect as redirect:
            response = redirect.get_response(environ)
        except HTTPException as error:
            response = from_http_exception(error, rid)
        except Exception:  # noqa: BLE001 (no input may make the gateway answer 500)
            log.exception("routing_failed", request_id=rid)
            response = from_http_exception(HTTPException(), rid)
        else:
            request.path_values = values
            return provider.handle_request(request)(environ, start_response)
        response.headers[REQUEST_ID_HEADER] = rid
        access_log(request, response, started, None)
        return response(environ, start_response)


class GatewayWebServer(WebServer):
    """The shared web server of the gateway's routes."""

    def get_wsgi_app(self) -> GatewayWsgiApp:
        return GatewayWsgiApp(self)

    def get_wsgi_server(
        self,
        sock: Any,
        wsgi_app: Any,
        protocol: Any = HttpOnlyProtocol,
        debug: bool = False,
    ) -> Any:
        """eventlet's server without its own access log: :func:`access_log`
        writes one line per request already, and eventlet formatted its line
        (dates included) for every request even when the level dropped it."""
        server = super().get_wsgi_server(sock, wsgi_app, protocol, debug)
        # Errors still go to eventlet's logger; only the access line stops.
        server.log_output = False
        return server


def access_log(
    request: Request, response: Response, started: float, user_id: str | None
) -> None:
    """One line per request; never headers, cookies, bodies or query strings."""
    log.info(
        "http_request",
        method=request.method,
        path=request.path[:512],
        status=response.status_code,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
        request_id=request_id_of(request),
        user_id=user_id,
    )


class ApiRoute(HttpRequestHandler):
    """A nameko ``http`` entrypoint for one API route, with its documentation.

    ``body`` and ``query`` are the marshmallow schemas the request is loaded
    with; ``response`` documents the answer; ``auth`` says whether the caller
    must be authenticated; ``status`` is the success status.
    """

    server = GatewayWebServer()

    def __init__(
        self,
        method: str,
        url: str,
        *,
        body: type[Schema] | None = None,
        query: type[Schema] | None = None,
        response: type[Schema] | None = None,
        auth: bool = True,
        status: int = 200,
        tag: str = "api",
        content_type: str = JSON_TYPE,
        **kwargs: Any,
    ) -> None:
        super().__init__(method, url, **kwargs)
        self.body = body
        self.query = query
        self.response = response
        self.auth = auth
        self.status = status
        self.tag = tag
        self.content_type = content_type

    def handle_request(self, request: RoutedRequest) -> Response:
        started = time.monotonic()
        rid = request_id_of(request)
        request.shallow = False
        outcome: dict[str, Any] = {}
        try:
            event = Event()
            self.container.spawn_worker(
                self,
                (request,),
                dict(request.path_values),
                context_data={REQUEST_ID_KEY: rid},
                handle_result=functools.partial(self._handle_result, event, outcome),
            )
            result, exc_info = event.wait()
            if exc_info is not None:
                raise exc_info[1]
            response = result if isinstance(result, Response) else json_response(result)
        except ContainerBeingKilled:
            response = from_platform_error(
                ServiceUnavailable("The gateway is stopping"), rid
            )
        except Exception as error:  # noqa: BLE001 (no input may make the gateway answer 500)
            response = error_response(error, rid)
        response.headers[REQUEST_ID_HEADER] = rid
        access_log(request, response, started, outcome.get("user_id"))
        return response

    def _handle_result(
        self,
        event: Event,
        outcome: dict[str, Any],
        worker_ctx: Any,
        result: Any,
        exc_info: Any,
    ) -> tuple[Any, Any]:
        identity = worker_ctx.data.get(CONTEXT_KEY)
        if identity:
            try:
                outcome["user_id"] = json.loads(identity).get("user_id")
            except (TypeError, ValueError):
                pass
        event.send((result, exc_info))
        return result, exc_info


def json_response(payload: Any, status: int = 200) -> Response:
    if payload is None and status == 204:
        return Response(status=204)
    return Response(json.dumps(payload, default=str), status=status, mimetype=JSON_TYPE)


def error_response(error: BaseException, request_id: str) -> Response:
    """The problem document for any error; unexpected ones are logged."""
    if isinstance(error, PlatformError):
        return from_platform_error(error, request_id)
    if isinstance(error, HTTPException):
        return from_http_exception(error, request_id)
    if isinstance(error, RemoteError):
        log.error(
            "upstream_error",
            request_id=request_id,
            exc_type=error.exc_type,
            error=str(error.value)[:500],
        )
        return from_platform_error(UpstreamError(), request_id)
    log.error("gateway_fault", request_id=request_id, exc_info=error)
    return from_platform_error(GatewayFault(), request_id)


def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refused with 413 past ``limit`` before it is read in full."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"The body may be at most {limit} bytes")
    stream: Any = request.stream
    if length is None and "chunked" in request.headers.get("Transfer-Encoding", ""):
        # werkzeug reads nothing without a length; the server decodes chunks.
        stream = request.environ["wsgi.input"]
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"The body may be at most {limit} bytes")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(request: Request) -> Any:
    """The JSON body; ``{}`` when there is none."""
    data = read_body(request)
    if not data.strip():
        return {}
    mimetype = request.mimetype or ""
    if mimetype != JSON_TYPE and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(
            f"Send the body as {JSON_TYPE}, not {mimetype or 'an unnamed type'}"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest("The body is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise MalformedRequest("The body is not valid JSON") from None


def load(schema_cls: type[Schema], data: Any) -> dict[str, Any]:
    """Load ``data`` with a schema; 422 with field errors if it does not fit."""
    try:
        return schema_cls().load(data)
    except ValidationError as error:
        messages = error.messages
        if not isinstance(messages, dict):
            messages = {"_schema": messages}
        raise ValidationFailed("The request is not valid", messages) from None
    except RecursionError:
        raise MalformedRequest("The body is nested too deeply") from None


def route(
    method: str, url: str, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an API route on a :class:`GatewayService` method.

    The method receives the request, then ``caller`` (the Identity) when the
    route needs authentication, ``body`` and ``query`` when the route has
    those schemas, and the path values. It returns a JSON-ready value, a
    ``(status, value)`` pair or a werkzeug Response.
    """
    body_schema = options.get("body")
    query_schema = options.get("query")
    needs_auth = options.get("auth", True)
    status = options.get("status", 200)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def handler(self: Any, request: Request, **path_values: Any) -> Response:
            rid = request_id_of(request)
            try:
                kwargs: dict[str, Any] = dict(path_values)
                if needs_auth:
                    kwargs["caller"] = self.request_context.authenticate(request)
                if query_schema is not None:
                    kwargs["query"] = load(query_schema, request.args.to_dict())
                if body_schema is not None:
                    kwargs["body"] = load(body_schema, parse_json_body(request))
                result = func(self, request, **kwargs)
                if isinstance(result, Response):
                    return result
                if isinstance(result, tuple):
                    return json_response(result[1], result[0])
                return json_response(result, status)
            except Exception as error:  # noqa: BLE001 (every error becomes a problem)
                return error_response(error, rid)

        return ApiRoute.decorator(method, url, **options)(handler)

    return decorate


def problem(
    status: int, code: str, title: str, request: Request, **extra: Any
) -> Response:
    """A problem document for a route to return directly."""
    return problem_response(
        status, code, title, request_id=request_id_of(request), **extra
    )
