"""A real `queuectl dashboard` in a subprocess on a free loopback port, and a small HTTP client."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from http.client import HTTPMessage
from pathlib import Path
from typing import Any, NamedTuple

from queuectl.paths import DatabaseLocation
from queuectl.store import open_store
from queuectl.store.insights import InsightsStore, with_insights
from tests.helpers import CliResult, queuectl_executable, run_cli, wait_until


class Reply(NamedTuple):
    status: int
    headers: HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DashboardServer:
    """`queuectl dashboard` on its own QUEUECTL_HOME; stopped with SIGTERM by stop().

    It gets a token of its own (QUEUECTL_DASHBOARD_TOKEN) unless `extra_args` name one
    (`--token T`) or none (`--no-token`), or `own_token=False` leaves it to generate
    one. Its requests carry the token it knows unless told `authorized=False`.
    """

    def __init__(self, home: Path, *extra_args: str, own_token: bool = True) -> None:
        self.home = home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "QUEUECTL_HOME": str(home)}
        self.env.pop("QUEUECTL_DB", None)
        self.env.pop("QUEUECTL_DASHBOARD_TOKEN", None)
        self.token: str | None = None
        if "--token" in extra_args:
            self.token = extra_args[extra_args.index("--token") + 1]
        elif own_token and "--no-token" not in extra_args:
            self.token = self.env["QUEUECTL_DASHBOARD_TOKEN"] = secrets.token_urlsafe(18)
        self.location = DatabaseLocation(
            "sqlite", str(home / "queue.db"), None, str(home / "queue.db")
        )
        self.process = subprocess.Popen(
            [queuectl_executable(), "dashboard", "--port", str(self.port), *extra_args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(self._answers, timeout=30, interval=0.05, what="the dashboard to answer")
        except AssertionError:
            self.stop()
            raise

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            out, err = self.process.communicate()
            raise AssertionError(f"dashboard exited {self.process.returncode}: {out}{err}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def page_url(self, fragment: str = "") -> str:
        """The page's address as `queuectl dashboard` prints it, token included."""
        query = f"?token={self.token}" if self.token else ""
        return f"{self.base}/{query}{fragment}"

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        raw_body: bytes | None = None,
        authorized: bool = True,
    ) -> Reply:
        data = raw_body
        all_headers = dict(headers or {})
        if authorized and self.token:
            all_headers.setdefault("Authorization", f"Bearer {self.token}")
        if body is not None:
            data = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(
            self.base + path, data=data, headers=all_headers, method=method
        )
        try:
            with _OPENER.open(request, timeout=30) as response:
                return Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.headers, error.read())

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post_as_page(
        self,
        path: str,
        body: Any,
        *,
        authorized: bool = True,
        raw_body: bytes | None = None,
        **headers: str,
    ) -> Reply:
        """A POST as the page's own script sends it."""
        return self.request(
            "POST",
            path,
            body=body,
            raw_body=raw_body,
            authorized=authorized,
            headers={
                "X-Queuectl-Request": "1",
                "Origin": self.base,
                "Sec-Fetch-Site": "same-origin",
                **headers,
            },
        )

    def store(self) -> InsightsStore:
        return with_insights(open_store(self.location))

    def cli(self, *args: str) -> CliResult:
        return run_cli(*args, env={"QUEUECTL_HOME": str(self.home), "QUEUECTL_DB": None})

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.communicate()
        return self.process.returncode
