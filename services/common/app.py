"""The FastAPI app both services build on: health and readiness, Prometheus metrics, JSON
request logs, and errors that say which field and why."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from services.common.errors import ServiceError

log = logging.getLogger("services.http")


def _field(location: Iterable[object]) -> str:
    """``body.order.quantity`` -> ``order.quantity``: the path in the request body."""
    parts = [str(p) for p in location]
    return ".".join(parts[1:] if parts and parts[0] in {"body", "query", "path"} else parts)


class ObserveRequests:
    """Counts, times and logs every HTTP request. Plain ASGI: Starlette's ``@app.middleware``
    (BaseHTTPMiddleware) runs each request through an extra task and stream, a few ms each."""

    def __init__(self, app, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception with no response is a 500 to the client

        async def observed_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.requests.labels(method, route, str(status)).inc()
            self.latency.labels(method, route).observe(elapsed)
            log.info(
                "%s %s %d",
                method,
                scope["path"],
                status,
                extra={"route": route, "status": status, "ms": round(elapsed * 1e3, 2)},
            )


def create_app(
    title: str,
    version: str,
    routers: Iterable[APIRouter],
    ready: Callable[[], bool],
) -> FastAPI:
    app = FastAPI(title=title, version=version)
    registry = CollectorRegistry()  # per app: two apps in one test process do not clash
    requests = Counter(
        "http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "http_request_duration_seconds",
        "HTTP request latency",
        ["method", "route"],
        registry=registry,
        buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    )
    app.state.metrics_registry = registry

    app.add_middleware(ObserveRequests, requests=requests, latency=latency)

    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        detail = {"message": exc.message}
        if exc.field is not None:
            detail["field"] = exc.field
        return JSONResponse({"detail": [detail]}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"field": _field(error["loc"]), "message": error["msg"]} for error in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.get("/health/live", tags=["health"])
    def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"])
    def readiness() -> JSONResponse:
        ok = ready()
        return JSONResponse(
            {"status": "ready" if ok else "not ready"}, status_code=200 if ok else 503
        )

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app
