"""The Starlette application: routes, the token and Host checks, errors as one line of
JSON. The work is done in ``queries`` (plain functions over the CLI's code); handlers
parse, call and answer, as the CLI's commands do.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.errors import InvalidArgument, SwarmError
from orchestrator.store.changes import ChangeReader, reader_for
from orchestrator.store.file_changes import FileChanges
from orchestrator.web import events, queries
from orchestrator.web.security import Access

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"

# CLI exit code -> HTTP status.
_STATUS = {2: 400, 3: 409, 4: 504, 5: 403, 6: 404}


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def _error(status: int, message: str) -> Response:
    return _Json({"error": message}, status_code=status)


class Guard:
    """Refuses what the token or the Host does not allow, before any route runs."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = scope["path"]
        if not self.access.host_ok(request.headers.get("host")):
            response = _error(400, "this server answers only requests to 127.0.0.1 or localhost")
        elif self._needs_token(scope["method"], path) and not self.access.allows(
            request.headers.get("authorization"),
            request.query_params.get("token") if path == "/api/events" else None,
        ):
            response = _error(
                401,
                "missing or wrong token: send the header 'Authorization: Bearer <token>'"
                " (SWARM_HTTP_TOKEN, or the one printed when the server started)",
            )
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    def _needs_token(self, method: str, path: str) -> bool:
        if method not in ("GET", "HEAD", "OPTIONS"):
            return True  # every change, on loopback too
        exposed = path.startswith("/api/") or path == "/metrics"
        return exposed and not self.access.loopback and path != "/api/openapi.json"


def _ints(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"{name} {raw!r} is not a whole number") from None


def _float(request: Request, name: str, default: float) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidArgument(f"{name} {raw!r} is not a number") from None


async def _body(request: Request, required: bool) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise InvalidArgument("the request needs a JSON body")
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"the body is not valid JSON: {exc}") from None


def _lifespan(sources: queries.Sources) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        sources.close()

    return lifespan


def create_app(sources: queries.Sources, access: Access) -> Starlette:
    """The ASGI app over ``sources``; ``access`` decides who may do what."""
    from starlette.concurrency import run_in_threadpool

    schemas = SchemaGenerator(
        {"openapi": "3.0.0", "info": {"title": "swarmsh HTTP API", "version": "1"}}
    )

    async def run(call: Any, *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(call, *args, **kwargs)

    async def list_work(request: Request) -> Response:
        """
        summary: Work items in list-work's order, filtered and paged.
        parameters:
          - {name: status, in: query, schema: {type: string}}
          - {name: type, in: query, schema: {type: string}}
          - {name: team, in: query, schema: {type: string}}
          - {name: priority, in: query, schema: {type: string}}
          - {name: all, in: query, schema: {type: boolean}}
          - {name: limit, in: query, schema: {type: integer, default: 100}}
          - {name: offset, in: query, schema: {type: integer, default: 0}}
        responses:
          200: {description: "{items, total, limit, offset}"}
          400: {description: a bad filter or page}
        """
        q = request.query_params
        data = await run(
            queries.list_work,
            sources,
            status=q.getlist("status"),
            work_type=q.getlist("type"),
            team=q.getlist("team"),
            priority=q.getlist("priority"),
            include_all=q.get("all", "").lower() in ("1", "true", "yes"),
            limit=_ints(request, "limit", 100),
            offset=_ints(request, "offset", 0),
        )
        return _Json(data)

    async def get_work(request: Request) -> Response:
        """
        summary: One item with its parents, children, attempts and trace spans.
        responses:
          200: {description: "{item, parents, children, attempts, spans}"}
          404: {description: no such item}
        """
        return _Json(await run(queries.item_detail, sources, request.path_params["id"]))

    async def add_work(request: Request) -> Response:
        """
        summary: Enqueue an item, as swarm add (token required).
        requestBody:
          content:
            application/json:
              schema:
                type: object
                required: [work_type, description]
                properties:
                  work_type: {type: string}
                  description: {type: string}
                  priority: {type: string, enum: [critical, high, medium, low]}
                  team: {type: string}
                  payload: {}
                  key: {type: string}
                  after: {type: array, items: {type: string}}
        responses:
          201: {description: "{item, added: true}"}
          200: {description: "{item, added: false}: the key is held by this item"}
          400: {description: bad input}
          404: {description: a parent in after does not exist}
        """
        body = await _body(request, required=True)
        item, added = await run(queries.enqueue, sources, body)
        return _Json({"item": item.to_dict(), "added": added}, status_code=201 if added else 200)

    async def cancel_work(request: Request) -> Response:
        """
        summary: Cancel an item and those waiting for it (token required).
        responses:
          200: {description: "{item}"}
          404: {description: no such item}
          409: {description: the item has ended}
        """
        body = await _body(request, required=False)
        reason = body.get("reason") if isinstance(body, dict) else None
        item = await run(queries.cancel, sources, request.path_params["id"], reason)
        return _Json({"item": item.to_dict()})

    async def retry_work(request: Request) -> Response:
        """
        summary: Put a dead, failed or cancelled item back in the queue (token required).
        responses:
          200: {description: "{item}"}
          404: {description: no such item}
          409: {description: the item is not dead, failed or cancelled}
        """
        item = await run(queries.retry, sources, request.path_params["id"])
        return _Json({"item": item.to_dict()})

    async def get_agents(request: Request) -> Response:
        """
        summary: The supervisor's agent processes and the store's registered agents.
        responses:
          200: {description: "{supervisor, agents, registered}"}
        """
        return _Json(await run(queries.agents, sources))

    async def get_groups(request: Request) -> Response:
        """
        summary: Agent groups of the running supervisor.
        responses:
          200: {description: "{groups, supervisor_alive}"}
        """
        return _Json(await run(queries.groups, sources))

    async def group_action(request: Request) -> Response:
        """
        summary: Stop, start or restart an agent group (token required).
        parameters:
          - {name: timeout, in: query, schema: {type: number, default: 60}}
        responses:
          200: {description: "{group, state, agents}"}
          404: {description: no such group, or no supervisor running}
          409: {description: the supervisor takes no requests now}
          504: {description: the group did not settle in time}
        """
        action = request.path_params["action"]
        if action not in ("stop", "start", "restart"):
            raise HTTPException(404)
        timeout = _float(request, "timeout", 60.0)
        name = request.path_params["name"]
        return _Json(await run(queries.group_action, sources, name, action, timeout))

    async def get_queue(request: Request) -> Response:
        """
        summary: Items by status, total, agents.
        responses:
          200: {description: "{store, work, work_total, agents}"}
        """
        return _Json(await run(queries.queue, sources))

    async def get_throughput(request: Request) -> Response:
        """
        summary: Items finished per time bucket.
        parameters:
          - {name: window, in: query, schema: {type: string, default: 1h}}
          - {name: bucket, in: query, schema: {type: number, default: 60}}
        responses:
          200: {description: "{window_s, bucket_s, start, buckets}"}
        """
        window = request.query_params.get("window", "1h")
        bucket = _float(request, "bucket", 60.0)
        return _Json(await run(queries.throughput, sources, window, bucket))

    async def get_health(request: Request) -> Response:
        """
        summary: Health score 0-100, as swarm health --json.
        parameters:
          - {name: window, in: query, schema: {type: string, default: 24h}}
        responses:
          200: {description: the health report}
        """
        return _Json(await run(queries.health, sources, request.query_params.get("window")))

    async def get_stats(request: Request) -> Response:
        """
        summary: Span statistics per operation, as swarm telemetry stats --json.
        parameters:
          - {name: window, in: query, schema: {type: string, default: 24h}}
        responses:
          200: {description: "{operations, …, window}"}
        """
        return _Json(await run(queries.stats, sources, request.query_params.get("window")))

    async def get_cost(request: Request) -> Response:
        """
        summary: LLM tokens and cost, as swarm cost --json.
        parameters:
          - {name: by, in: query, schema: {type: string, default: group}}
          - {name: window, in: query, schema: {type: string, default: all}}
        responses:
          200: {description: "{rows, total, …}"}
        """
        q = request.query_params
        return _Json(await run(queries.cost, sources, q.get("by", "group"), q.get("window", "all")))

    async def get_limits(request: Request) -> Response:
        """
        summary: Shared limits and budgets, as swarm limits --json.
        responses:
          200: {description: "{limits, budgets}"}
        """
        return _Json(await run(queries.limits, sources))

    async def get_worktrees(request: Request) -> Response:
        """
        summary: Git worktrees, as swarm worktree list --json.
        responses:
          200: {description: "{worktrees: [...]}"}
        """
        return _Json(await run(queries.worktrees, sources))

    async def get_events(request: Request) -> Response:
        """
        summary: Server-Sent Events of store changes, resumable with Last-Event-ID.
        responses:
          200: {description: "text/event-stream"}
        """
        store = await run(sources.read, lambda s: s)
        last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        is_pg = hasattr(getattr(store, "inner", store), "dsn")

        def reader() -> ChangeReader:
            if store is None:  # looking creates no store: follow it from its first record
                return FileChanges(sources.context.store_target)
            return reader_for(store)

        body = events.stream(
            reader,
            last,
            events.POLL_PG_S if is_pg else events.POLL_S,
            lambda: sources.stopping.is_set(),
            request.is_disconnected,
        )
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    async def metrics(request: Request) -> Response:
        text = await run(queries.metrics_text, sources)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(request: Request) -> Response:
        return _Json(schemas.get_schema(routes))

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    routes = [
        Route("/api/work", list_work, methods=["GET"]),
        Route("/api/work", add_work, methods=["POST"]),
        Route("/api/work/{id}", get_work, methods=["GET"]),
        Route("/api/work/{id}/cancel", cancel_work, methods=["POST"]),
        Route("/api/work/{id}/retry", retry_work, methods=["POST"]),
        Route("/api/agents", get_agents, methods=["GET"]),
        Route("/api/groups", get_groups, methods=["GET"]),
        Route("/api/groups/{name}/{action}", group_action, methods=["POST"]),
        Route("/api/queue", get_queue, methods=["GET"]),
        Route("/api/throughput", get_throughput, methods=["GET"]),
        Route("/api/health", get_health, methods=["GET"]),
        Route("/api/stats", get_stats, methods=["GET"]),
        Route("/api/cost", get_cost, methods=["GET"]),
        Route("/api/limits", get_limits, methods=["GET"]),
        Route("/api/worktrees", get_worktrees, methods=["GET"]),
        Route("/api/events", get_events, methods=["GET"]),
        Route("/api/openapi.json", openapi, methods=["GET"], include_in_schema=False),
        Route("/metrics", metrics, methods=["GET"], include_in_schema=False),
        Route("/", page, methods=["GET"], include_in_schema=False),
        Route("/work/{id}", page, methods=["GET"], include_in_schema=False),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    async def swarm_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SwarmError)
        return _error(_STATUS.get(exc.exit_code, 500), exc.message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return _error(404, f"no such route: {request.method} {request.url.path}")
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        logger.exception("%s %s failed", request.method, request.url.path)
        return _error(500, f"internal error: {type(exc).__name__} (see the server's log)")

    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, access=access)],
        exception_handlers={
            SwarmError: swarm_error,
            HTTPException: http_error,
            Exception: server_error,
        },
        lifespan=_lifespan(sources),
    )
    return app
