"""The daemon's HTTP endpoint: /metrics for Prometheus, /healthz for probes and people.

prometheus-client's WSGI app serves /metrics (content negotiation for the text and
OpenMetrics formats, gzip, `name[]` filters) so none of that is written again here;
wsgiref's server with one thread per request runs it in a background thread, as
prometheus-client's own `start_http_server` does, with /healthz routed beside it.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from watchdog.metrics.health import HealthTracker

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


class _QuietHandler(WSGIRequestHandler):
    """No access log: Prometheus scrapes every few seconds."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _IPv6Server(ThreadingWSGIServer):
    """For an IPv6 listen address (wsgiref's server binds IPv4 only)."""

    address_family = socket.AF_INET6


WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def health_app(health: HealthTracker, clock: Callable[[], datetime]) -> WSGIApp:
    """/healthz: 200 "ok" when healthy, else 503 with one reason per line (JSON on request)."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        problems = health.problems(clock())
        status = "503 Service Unavailable" if problems else "200 OK"
        if "application/json" in environ.get("HTTP_ACCEPT", ""):
            body = json.dumps({"healthy": not problems, "problems": problems}, ensure_ascii=False)
            content_type = "application/json; charset=utf-8"
        else:
            body = "\n".join(problems) if problems else "ok"
            content_type = "text/plain; charset=utf-8"
        data = (body + "\n").encode()
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
        return [data]

    return app


def router(
    registry: CollectorRegistry, health: HealthTracker, clock: Callable[[], datetime]
) -> Any:
    metrics: WSGIApp = make_wsgi_app(registry)
    healthz = health_app(health, clock)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            return healthz(environ, start_response)
        data = b"not found: try /metrics or /healthz\n"
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [data]

    return app


class MetricsServer:
    """/metrics and /healthz on a background thread until `stop`."""

    def __init__(
        self,
        address: str,
        port: int,
        registry: CollectorRegistry,
        health: HealthTracker,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        server_class = _IPv6Server if ":" in address else ThreadingWSGIServer
        # Raises OSError when the port is taken; the caller says what to do about it.
        self._server = make_server(
            address,
            port,
            router(registry, health, clock),
            server_class=server_class,
            handler_class=_QuietHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
