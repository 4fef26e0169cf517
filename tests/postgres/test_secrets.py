"""No output, file or log of queuectl shows a PostgreSQL password, in any of its forms, and
no job sees queuectl's own secrets. Through the real `queuectl` executable.

Trust authentication (as on the test server) ignores the password, so every form of
address below connects. Skipped with a reason unless QUEUECTL_TEST_PG_URL names a
server (in CI a skip is a failure, as for every PostgreSQL test).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard.server import free_port
from tests.helpers import CliResult, _cli_environment, queuectl_executable, run_cli
from tests.stores import PG_URL_VARIABLE, pg_test_url

SECRET = "Pw-7f3a9c"
TOKEN = "dashboard-token-5b1e0d42c8"


def _server() -> dict[str, str]:
    url = pg_test_url("PostgreSQL secrets tests")
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    return {key: str(params[key]) for key in ("host", "port", "user", "dbname") if key in params}


def addresses(server: dict[str, str], schema: str, port: str | None = None) -> dict[str, str]:
    """The same database, its password written each way libpq takes one."""
    host, user, db = (
        server.get("host", "127.0.0.1"),
        server.get("user", "postgres"),
        server["dbname"],
    )
    port = port or server.get("port", "5432")
    options = f"options=-csearch_path%3D{schema}"
    base = f"{host}:{port}/{db}"
    return {
        "userinfo": f"postgresql://{user}:{SECRET}@{base}?{options}",
        "query": f"postgresql://{user}@{base}?password={SECRET}&sslmode=disable&{options}",
        "sslpassword": f"postgresql://{user}@{base}?sslpassword={SECRET}&{options}",
        "percent-encoded": f"postgresql://{user}:{SECRET}%40%2F%3F@{base}?{options}",
        "key=value": (
            f"host={host} port={port} user={user} dbname={db} "
            f"password='{SECRET} x' options='-csearch_path={schema}'"
        ),
    }


FORMS = ("userinfo", "query", "sslpassword", "percent-encoded", "key=value")


@pytest.fixture
def schema() -> Iterator[str]:
    server = _server()
    import psycopg
    from psycopg import sql

    admin_url = os.environ[PG_URL_VARIABLE]
    name = f"secrets_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        assert server
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def assert_hidden(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text, text
        assert TOKEN not in text, text


def files_under(root: Path) -> dict[str, str]:
    return {
        str(path): path.read_text(errors="replace") for path in root.rglob("*") if path.is_file()
    }


@pytest.mark.parametrize("form", FORMS)
def test_no_command_output_file_or_log_shows_the_password(
    form: str, schema: str, tmp_path: Path
) -> None:
    home, out = tmp_path / "home", tmp_path / "job-saw"
    address = addresses(_server(), schema)[form]
    env = {"QUEUECTL_HOME": str(home), "QUEUECTL_DB": address, "QUEUECTL_DASHBOARD_TOKEN": TOKEN}

    def cli(*args: str) -> CliResult:
        # umask 000: the worker's files must be private whatever the umask.
        result = run_cli(*args, env=env, cwd=tmp_path, shell_prefix="umask 000")
        assert_hidden(result.stdout, result.stderr)
        return result

    ready = cli("init-db")
    assert ready.returncode == 0 and "***" in ready.stdout, ready
    # The job reports what it can see: its environment and the worker's database file.
    command = (
        f"env > {out}.env; stat -c %a {home}/run/w-*/database > {out}.mode; "
        f"cat {home}/run/w-*/database > {out}.database"
    )
    assert cli("enqueue", f'{{"id": "spy", "command": "{command}"}}').returncode == 0
    assert cli("worker", "run", "--burst").returncode == 0
    assert cli("status").returncode == 0
    assert cli("doctor").returncode in (0, 1)  # 1: advice (no live worker), still no secret
    assert Path(f"{out}.mode").read_text().strip() == "600"
    assert "***" in Path(f"{out}.database").read_text()
    seen = Path(f"{out}.env").read_text()
    assert "QUEUECTL_DB=" not in seen and "QUEUECTL_DASHBOARD_TOKEN=" not in seen
    assert_hidden(*files_under(home).values(), *files_under(tmp_path).values())


@pytest.mark.parametrize("form", FORMS)
def test_connection_errors_do_not_show_the_password(form: str, tmp_path: Path) -> None:
    unreachable = addresses(_server(), "nowhere", port="1")[form]  # nothing listens on port 1
    env = {"QUEUECTL_HOME": str(tmp_path / "home"), "QUEUECTL_DB": unreachable}
    for args in (("init-db",), ("status",), ("doctor",), ("dashboard", "--no-token")):
        result = run_cli(*args, env=env, cwd=tmp_path)
        assert result.returncode == 1 and result.stderr.startswith("Error:"), (args, result)
        assert "Traceback" not in result.stderr
        assert_hidden(result.stdout, result.stderr)
    bad_port = addresses(_server(), "nowhere", port="notaport")[form]
    result = run_cli("status", env={**env, "QUEUECTL_DB": bad_port}, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith("Error:"), result
    assert_hidden(result.stdout, result.stderr)


@pytest.mark.parametrize("form", FORMS)
def test_the_dashboard_start_up_lines_do_not_show_the_password(
    form: str, schema: str, tmp_path: Path
) -> None:
    env = _cli_environment(
        {"QUEUECTL_HOME": str(tmp_path / "home"), "QUEUECTL_DB": addresses(_server(), schema)[form]}
    )
    process = subprocess.Popen(
        [queuectl_executable(), "dashboard", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "the dashboard printed nothing within 60 s"
        first = process.stdout.readline()
        assert first.startswith("queuectl dashboard for ") and "***" in first, first
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert_hidden(first, out, err)
