"""What stands before every request: token, role, rate limit and body size.

One pure ASGI middleware, so a refused request never reaches a route and a body is
never read past the limit. The API answers refusals as JSON (`{"error": "..."}`);
the console sends a browser without a valid cookie to its login page.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from watchdog.web.settings import TokenSettings

COOKIE = "watchdog_token"
API_PREFIX = "/api/"
CONSOLE_PREFIX = "/console"
CONSOLE_OPEN_PATHS = ("/console/login",)  # reachable without a token
MAX_TRACKED_CLIENTS = 10_000  # buckets kept for unauthenticated clients


@dataclass(frozen=True)
class Principal:
    """Who is asking: the token's name (recorded as the actor) and its role."""

    name: str
    role: str

    @property
    def may_write(self) -> bool:
        return self.role == "supervisor"


class Authenticator:
    """Bearer token → principal, by the token's SHA-256.

    A dictionary lookup on the digest is safe against timing: what it could leak is how
    much of a hash matched, and a hash says nothing about a token with that prefix.
    """

    def __init__(self, tokens: tuple[TokenSettings, ...]) -> None:
        self._by_hash = {t.sha256: Principal(t.name, t.role) for t in tokens}

    def identify(self, token: str) -> Principal | None:
        if not token or len(token) > 1024:
            return None
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        return self._by_hash.get(digest)


class RateLimiter:
    """A token bucket per key: `burst` requests at once, refilled at `per_minute`."""

    def __init__(
        self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one request; 0 when allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            level, last = self._buckets.pop(key, (self.burst, now))
            level = min(self.burst, level + (now - last) * self.rate)
            wait = 0.0 if level >= 1 else (1 - level) / self.rate
            self._buckets[key] = (level - 1 if wait == 0 else level, now)
            while len(self._buckets) > MAX_TRACKED_CLIENTS:
                self._buckets.popitem(last=False)
            return wait


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def cookie_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            cookies: SimpleCookie = SimpleCookie()
            try:
                cookies.load(value.decode("latin-1"))
            except Exception:  # a malformed Cookie header is no token
                return None
            morsel = cookies.get(COOKIE)
            return morsel.value if morsel else None
    return None


def content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return None


def client_key(scope: Scope) -> str:
    client = scope.get("client")
    return f"client:{client[0] if client else 'unknown'}"


HtmlError = Callable[[int, str], Response]


class GuardMiddleware:
    """Body size, authentication and rate limit for /api/ and /console."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        limiter: RateLimiter,
        max_body_bytes: int,
        html_error: HtmlError,
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        self.html_error = html_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        api = path.startswith(API_PREFIX)

        def refuse(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
            if api:
                return JSONResponse({"error": message}, status_code=status, headers=headers)
            response = self.html_error(status, message)
            response.headers.update(headers or {})
            return response

        length = content_length(scope)
        if length is not None and (length < 0 or length > self.max_body_bytes):
            reason = (
                f"request body too large: {length} bytes, the limit is {self.max_body_bytes}"
                if length >= 0
                else "Content-Length is not a number"
            )
            await refuse(413 if length >= 0 else 400, reason)(scope, receive, send)
            return
        console = path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")
        if api or (console and path not in CONSOLE_OPEN_PATHS):
            token = bearer_token(scope) if api else cookie_token(scope)
            principal = self.authenticator.identify(token) if token else None
            if principal is None:
                # Failed attempts are rate limited per client, so guessing tokens is slow.
                wait = self.limiter.take(client_key(scope)) if token else 0.0
                if wait:
                    await refuse(429, _too_many(wait), _retry(wait))(scope, receive, send)
                elif api:
                    message = (
                        "invalid token"
                        if token
                        else 'authentication required: send "Authorization: Bearer <token>"'
                    )
                    await refuse(401, message, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
                else:
                    await RedirectResponse("/console/login", status_code=303)(scope, receive, send)
                return
            wait = self.limiter.take(f"token:{principal.name}")
            if wait:
                await refuse(429, _too_many(wait), _retry(wait))(scope, receive, send)
                return
            scope.setdefault("state", {})["principal"] = principal
        body = await self._read_body(receive)
        if body is None:
            message = f"request body too large: more than {self.max_body_bytes} bytes"
            await refuse(413, message)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), _with_headers(send))

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole request body, or None once it passes the limit (reading stops)."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the app will see an empty body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(parts)


# Every answer holds supervision records: not to be cached on a shared machine, framed
# by another site, sniffed into another type, or leak its URL (filters, case ids) as
# a referrer. The console has no script, so its policy allows none.
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
]


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(n, v) for n, v in SECURITY_HEADERS if n not in names]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect as usual

    return replay


def _too_many(wait: float) -> str:
    return f"rate limit exceeded: try again in {max(1, round(wait))} s"


def _retry(wait: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, round(wait + 0.5)))}


def principal_of(state: Any) -> Principal:
    """The principal the middleware attached (routes behind it always have one)."""
    principal = getattr(state, "principal", None)
    if not isinstance(principal, Principal):
        raise RuntimeError("route reached without authentication")
    return principal
