"""Serving the API and console with uvicorn on a background thread of the daemon.

The socket is bound here, before the thread starts, so a taken port is an OSError the
daemon reports in one line (uvicorn would exit its thread instead); the daemon runs
on without the web, as it does without metrics.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from sqlalchemy import Engine

from watchdog.web.api import create_app
from watchdog.web.settings import WebSettings

log = logging.getLogger(__name__)


class WebServer:
    """The app on `address:port` until `stop`."""

    def __init__(self, store: Engine, settings: WebSettings) -> None:
        family = socket.AF_INET6 if ":" in settings.address else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((settings.address, settings.port))
        except OSError:
            self._socket.close()
            raise
        self._socket.listen(128)
        config = uvicorn.Config(
            create_app(store, settings),
            log_config=None,  # the daemon's logging, not uvicorn's own setup
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="web-http",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; return once uvicorn accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError("the web server did not start (see the log)")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


class WebService:
    """What the daemon holds: the server when `[web] enabled`, else nothing."""

    def __init__(self, store: Engine, settings: WebSettings) -> None:
        self.store = store
        self.settings = settings
        self.server: WebServer | None = None

    def start(self) -> None:
        if not self.settings.enabled:
            log.info("web API and console disabled ([web] enabled = false)")
            return
        try:
            server = WebServer(self.store, self.settings)
            server.start()
        except OSError as exc:
            log.error(
                "web: cannot listen on %s:%d ([web] address/port): %s",
                self.settings.address,
                self.settings.port,
                exc,
            )
            return
        self.server = server
        log.info(
            "auditors' API on http://%s:%d/api/v1/, console on /console/",
            self.settings.address,
            server.port,
        )

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
