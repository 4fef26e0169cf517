"""Start the dashboard: choose the token, bind the socket, run uvicorn until a signal."""

from __future__ import annotations

import re
import secrets
import signal
import socket
import sys
from types import FrameType

from queuectl.dashboard.auth import is_loopback
from queuectl.errors import InvalidInput, OperationFailed
from queuectl.escape import escape_text
from queuectl.paths import DatabaseLocation
from queuectl.store import open_store
from queuectl.store.insights import with_insights

# It travels in a URL and a cookie: characters that need no quoting in either.
_TOKEN = re.compile(r"[A-Za-z0-9._~/=-]{16,}")


def run(
    location: DatabaseLocation, host: str, port: int, token: str | None, *, no_token: bool
) -> int:
    """Serve until SIGINT or SIGTERM (both a clean stop, exit 0).

    A token is required unless `no_token` (loopback only): the queue's files are
    private to their owner, and the dashboard must not open them to every local
    user. Without one given, a token is generated and printed in the URL to open,
    as Jupyter does.
    """
    if port > 65535:
        raise InvalidInput(f"--port must be between 0 and 65535, not {port}")
    loopback = is_loopback(host)
    if no_token and not loopback:
        raise InvalidInput(f"--no-token is for a loopback address only, not --host {host}")
    if token is not None and not _TOKEN.fullmatch(token):
        raise InvalidInput("--token must be at least 16 characters of A-Z a-z 0-9 and . _ ~ / = -")
    generated = token is None and not no_token
    if generated:
        token = secrets.token_urlsafe(24)
    # Fail now, with the contract's Error line, rather than on the first request.
    with_insights(open_store(location)).close()
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]

    import uvicorn

    from queuectl.dashboard.app import create_app

    app = create_app(location, token=token, loopback_only=loopback, port=bound_port)
    shown_host = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    url = escape_text(f"http://{shown_host}:{bound_port}/")
    # The address and host name are the user's: shown escaped, as all text output is.
    print(f"queuectl dashboard for {escape_text(location.url)}", flush=True)
    # The one place the token is shown: a generated one has no other way to the user.
    if generated:
        print(f"  {url}?token={token}", flush=True)
        print("  (generated token; give --token or QUEUECTL_DASHBOARD_TOKEN to choose one)")
    elif token:
        print(f"  {url}?token=YOUR_TOKEN", flush=True)
    else:
        print(f"  {url}  (no token: every local user can use it)", flush=True)
    bearer = " (Authorization: Bearer TOKEN)" if token else ""
    print(f"  metrics: {url}metrics{bearer}    Ctrl-C stops it", flush=True)

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
    )
    # uvicorn re-raises the signal that stopped it once it has shut down: make that a
    # clean exit rather than a traceback (SIGINT) or death by signal (SIGTERM).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    sys.stdout.flush()
    return 0


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise InvalidInput(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OperationFailed(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(False)
    return sock
