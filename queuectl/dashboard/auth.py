"""Who may use the dashboard, and how: token, host check, cross-site protection, headers.

- With a token (required when bound off loopback), every request must carry it:
  `Authorization: Bearer TOKEN`, or the HttpOnly SameSite=Strict cookie that a
  request with `?token=TOKEN` sets. Anything else gets 401.
- Bound to loopback, requests must name a loopback host in `Host`, so a web
  page whose domain is re-pointed at 127.0.0.1 (DNS rebinding) reads nothing.
- A state change (any method but GET and HEAD) must come from the page itself:
  `Sec-Fetch-Site: same-origin` and an `Origin` equal to this server when the
  browser sends them, a JSON body, and the custom header the page's script
  sends. A cross-site form cannot set that header, and a cross-site script
  cannot send it without a CORS preflight, which this server never grants.
- Every response forbids framing, sniffing, referrers and inline scripts (CSP),
  a 500 from an unexpected error included.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("queuectl.dashboard")

CSRF_HEADER = "x-queuectl-request"
_SAFE_METHODS = ("GET", "HEAD")
_LOOPBACK_NAMES = ("localhost", "localhost.")

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def cookie_name(port: int) -> str:
    """Cookies ignore ports: two dashboards on one host must not share one."""
    return f"queuectl_dashboard_{port}"


class Guard:
    """ASGI middleware in front of the whole app (pages, API, static files, /metrics)."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback_only: bool, port: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.loopback_only = loopback_only
        self.cookie = cookie_name(port)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._wrong_host(headers)
        set_cookie = None
        if refusal is None and self.token is not None:
            authorized, set_cookie = self._authorized(scope, headers)
            if not authorized:
                refusal = _refuse(
                    401,
                    "this dashboard needs its token: open the URL `queuectl dashboard` printed "
                    "(…/?token=TOKEN), or send `Authorization: Bearer TOKEN`",
                    {"WWW-Authenticate": 'Bearer realm="queuectl"'},
                )
        if refusal is None and scope["method"] not in _SAFE_METHODS:
            refusal = self._cross_site_refusal(headers)
        if refusal is not None:
            await refusal(scope, receive, _with_headers(send, None))
            return
        started: list[bool] = []
        try:
            await self.app(scope, receive, _with_headers(send, set_cookie, started))
        except Exception as exc:
            # A bug: one line in the log, and a 500 that keeps the security headers
            # (Starlette's own 500 is sent from outside this middleware, without them).
            log.error("internal error answering %s %s: %r", scope["method"], scope["path"], exc)
            if started:
                raise
            failure = _refuse(500, "internal error (see the dashboard's log)")
            await failure(scope, receive, _with_headers(send, None))

    def _wrong_host(self, headers: Headers) -> Response | None:
        """Bound to loopback: only requests addressed to a loopback name (DNS rebinding)."""
        if not self.loopback_only:
            return None
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if not is_loopback(name):
            return _refuse(421, f"this dashboard answers to 127.0.0.1 or localhost, not {host!r}")
        return None

    def _authorized(self, scope: Scope, headers: Headers) -> tuple[bool, bytes | None]:
        """Is the token there? With a valid `?token=`, also the cookie to set."""
        assert self.token is not None
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._matches(credentials.strip()):
            return True, None
        if any(self._matches(value) for value in _cookie_values(headers, self.cookie)):
            return True, None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if scope["method"] in _SAFE_METHODS and self._matches(query.get("token", "")):
            cookie = (
                f"{self.cookie}={self.token.decode()}; Path=/; HttpOnly; SameSite=Strict"
            ).encode()
            return True, cookie
        return False, None

    def _matches(self, candidate: str) -> bool:
        assert self.token is not None
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self.token)

    def _cross_site_refusal(self, headers: Headers) -> Response | None:
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site != "same-origin":
            return _refuse(403, f"cross-site request refused (Sec-Fetch-Site: {fetch_site})")
        origin = headers.get("origin")
        if origin is not None:
            expected = {f"http://{headers.get('host', '')}", f"https://{headers.get('host', '')}"}
            if origin not in expected:
                return _refuse(403, f"cross-site request refused (Origin: {origin})")
        if headers.get(CSRF_HEADER) != "1":
            return _refuse(403, f"state changes need the header {CSRF_HEADER}: 1")
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _refuse(415, "send the body as application/json")
        return None


def _refuse(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": message},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _cookie_values(headers: Headers, name: str) -> list[str]:
    """The values of every cookie called `name`.

    Split by hand, as browsers send them ("a=1; b=2"): http.cookies.SimpleCookie stops
    at the first cookie it cannot parse (a space or a quote in another site's cookie
    on the same host), which would lose ours.
    """
    values = []
    for header in headers.getlist("cookie"):
        for pair in header.split(";"):
            key, equals, value = pair.partition("=")
            if equals and key.strip() == name:
                values.append(value.strip())
    return values


def _with_headers(send: Send, set_cookie: bytes | None, started: list[bool] | None = None) -> Send:
    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            if started is not None:
                started.append(True)
            extra = list(SECURITY_HEADERS)
            if set_cookie is not None:
                extra.append((b"set-cookie", set_cookie))
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sender
