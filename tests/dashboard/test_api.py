"""The dashboard's HTTP surface against a real `queuectl dashboard` (uvicorn) on a free port:
every endpoint, the token off loopback, POST-only state changes refused cross-site, and
/metrics parsed with prometheus_client."""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the dashboard's dependencies are not installed")
from prometheus_client.parser import text_string_to_metric_families

from queuectl.domain import JobState, Outcome
from queuectl.store.insights import InsightsStore
from queuectl.store.sqlite import SqliteStore
from tests.dashboard.server import DashboardServer
from tests.helpers import SUCCESS, assert_error, fail, live_worker_info, new_job

TOKEN = "test-token-0123456789abcdef"
# Each job these tests run gets a higher priority than every job before it, so a claim
# takes the job just enqueued, whatever earlier tests left runnable.
_priorities = itertools.count(1_000_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    dashboard = DashboardServer(tmp_path_factory.mktemp("dashboard") / "home")
    store = dashboard.store()
    store.set_config("backoff_base", "1000")  # a retried job stays out of later claims
    store.register_worker(live_worker_info("w-test"))
    store.close()
    yield dashboard
    assert dashboard.stop() == 0, "SIGTERM should stop the dashboard cleanly"


def run_job(
    store: InsightsStore,
    job_id: str,
    outcome: Outcome = SUCCESS,
    *,
    output: bytes = b"",
    max_retries: int = 3,
    **fields: object,
) -> None:
    """Enqueue a job and record one finished run of it, as a worker would."""
    priority = next(_priorities)
    store.enqueue([new_job(job_id, priority=priority, max_retries=max_retries, **fields)])
    store.heartbeat("w-test")
    claim = store.claim("w-test")
    assert claim is not None and claim.job.id == job_id
    assert store.finish(claim, outcome, output, len(output)).recorded


def make_dead(store: InsightsStore, job_id: str) -> None:
    run_job(store, job_id, fail(), max_retries=0)
    job = store.get_job(job_id)
    assert job is not None and job.state is JobState.DEAD


# --- the page ---------------------------------------------------------------------------
def test_the_page_and_its_assets_are_served_from_the_package(server: DashboardServer) -> None:
    page = server.get("/")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.body.decode()
    assert '<script src="/static/app.js" defer></script>' in html
    assert not re.search(r"<script>|<script [^>]*>[^<]", html), "no inline script"
    assert "http://" not in html and "https://" not in html, "no CDN"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        reply = server.get(f"/static/{asset}")
        assert reply.status == 200 and kind in reply.headers["Content-Type"]
    script = server.get("/static/app.js").body.decode()
    assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", script)
    assert server.get("/static/missing.js").status == 404


# --- reads --------------------------------------------------------------------------------
def test_stats_match_the_store(server: DashboardServer, store: InsightsStore) -> None:
    store.enqueue([new_job("stats-waiting")])
    run_job(store, "stats-ok")
    run_job(store, "stats-retried", fail(), max_retries=3)
    make_dead(store, "stats-dead")
    reply = server.get("/api/stats")
    assert reply.status == 200 and reply.headers["Cache-Control"] == "no-store"
    document = reply.json()
    counts = store.counts()
    assert document["jobs"] == {
        **{state.value: counts[state] for state in JobState},
        "total": sum(counts.values()),
    }
    assert document["dlq_size"] == counts[JobState.DEAD]
    runs = document["runs"]
    assert runs["completed"] >= 1 and runs["retries"] >= 1 and runs["dead_lettered"] >= 1
    assert runs["failed"] == runs["retries"] + runs["dead_lettered"]
    assert sum(m["completed"] for m in document["per_minute"]) == runs["completed"]
    assert document["window_seconds"] == 3600 and len(document["per_minute"]) in (60, 61)
    assert document["oldest_pending_age"] is not None
    assert {"worker_id": "w-test"}.items() <= document["workers"][0].items()
    assert server.get("/api/stats?since=15m").json()["window_seconds"] == 900
    for bad in ("8d", "soon", "0"):
        reply = server.get(f"/api/stats?since={bad}")
        assert reply.status == 400 and reply.json()["error"], bad


def test_jobs_are_paged_filtered_and_searched(
    server: DashboardServer, store: InsightsStore
) -> None:
    store.enqueue([new_job(f"page-{i:03d}", command=f"echo needle-{i}") for i in range(120)])
    first = server.get("/api/jobs?limit=50").json()
    total = sum(store.counts().values())
    assert first["total"] == total and first["total_exact"] is True
    assert len(first["jobs"]) == 50 and first["jobs"][0]["id"] == "page-119"  # newest first
    second = server.get("/api/jobs?limit=50&offset=50").json()
    assert second["jobs"][0]["id"] == "page-069" and second["offset"] == 50
    found = server.get("/api/jobs?q=NEEDLE-11&limit=100").json()
    assert sorted(job["id"] for job in found["jobs"]) == ["page-011"] + [
        f"page-{i}" for i in range(110, 120)
    ]
    assert found["total"] == 11
    assert server.get("/api/jobs?q=page-007").json()["total"] == 1  # by id
    pending = server.get("/api/jobs?state=pending&limit=500").json()
    assert pending["total"] == store.counts()[JobState.PENDING]
    assert {job["state"] for job in pending["jobs"]} == {"pending"}
    assert server.get("/api/jobs?state=dead&q=page").json()["total"] == 0
    for bad in ("state=lost", "limit=0", "limit=501", "offset=-1", "offset=x"):
        reply = server.get(f"/api/jobs?{bad}")
        assert reply.status == 400, bad
        assert reply.json()["error"]


def test_lists_carry_a_shortened_command_and_a_job_carries_it_whole(
    server: DashboardServer, store: InsightsStore
) -> None:
    huge = "echo " + "x" * (200 * 1024)
    store.enqueue([new_job(f"huge-{i}", command=huge, delay=3600) for i in range(20)])
    store.enqueue([new_job("huge-short", command="echo short", delay=3600)])
    reply = server.get("/api/jobs?q=huge-&limit=50")
    assert len(reply.body) < 20 * 1024, "20 jobs of 200 KiB commands: a page of a few KiB"
    jobs = {job["id"]: job for job in reply.json()["jobs"]}
    assert jobs["huge-3"]["command"] == huge[:200]
    assert jobs["huge-3"]["command_length"] == len(huge)
    assert jobs["huge-3"]["command_shortened"] is True
    assert jobs["huge-short"]["command"] == "echo short"
    assert jobs["huge-short"]["command_length"] == 10
    assert jobs["huge-short"]["command_shortened"] is False
    dead = server.get("/api/jobs?state=dead&limit=500").json()["jobs"]
    assert all(len(job["command"]) <= 200 for job in dead)
    whole = server.get("/api/jobs/huge-3").json()
    assert whole["command"] == huge and "command_shortened" not in whole


def test_a_job_with_its_attempts_and_output(server: DashboardServer, store: InsightsStore) -> None:
    run_job(
        store,
        "detail/1",  # a slash in the id still routes
        fail(3),
        output=b"first attempt\n\xff\n",
        env={"API_KEY": "hunter2"},
    )
    reply = server.get("/api/jobs/detail%2F1")
    assert reply.status == 200
    assert b"hunter2" not in reply.body, "env values are masked"
    document = reply.json()
    assert document["id"] == "detail/1" and document["state"] == "failed"
    assert document["env"] == {"API_KEY": "***"}
    assert [run["n"] for run in document["runs"]] == [1]
    assert document["runs"][0]["exit_code"] == 3
    assert document["output"] == {
        "run": 1,
        "text": "first attempt\n\ufffd\n",
        "shown_bytes": 16,
        "total_bytes": 16,
        "finished": True,
    }
    assert server.get("/api/jobs/detail%2F1?run=1").json()["output"]["run"] == 1
    assert server.get("/api/jobs/detail%2F1?run=7").json()["output"] is None
    assert server.get("/api/jobs/detail%2F1?run=zero").status == 400
    missing = server.get("/api/jobs/no-such-job")
    assert missing.status == 404 and "no-such-job" in missing.json()["error"]


@pytest.mark.parametrize("job_id", [".", "..", "a/b", "%2e", "a?b#c&d=e", "ジョブ"])
def test_every_valid_id_round_trips_in_the_query_form(
    server: DashboardServer, store: InsightsStore, job_id: str
) -> None:
    if store.get_job(job_id) is None:
        store.enqueue([new_job(job_id, command=f"echo {job_id}", delay=3600)])
    query = urllib.parse.urlencode({"id": job_id, "run": "1"})
    reply = server.get(f"/api/jobs/?{query}")
    assert reply.status == 200, reply.body
    assert (reply.json()["id"], reply.json()["command"]) == (job_id, f"echo {job_id}")
    assert server.get("/api/jobs/?id=").status == 400


def test_live_workers_with_their_job_and_heartbeat_age(
    server: DashboardServer, store: InsightsStore
) -> None:
    store.register_worker(live_worker_info("w-busy"))
    store.enqueue([new_job("held", priority=next(_priorities))])
    claim = store.claim("w-busy")
    assert claim is not None and claim.job.id == "held"
    stale = SqliteStore(server.location.path or "", clock=lambda: time.time() - 3600)
    stale.register_worker(live_worker_info("w-gone"))  # its heartbeat is an hour old
    stale.close()
    workers = {w["id"]: w for w in server.get("/api/workers").json()["workers"]}
    assert "w-gone" not in workers
    assert workers["w-busy"]["job_id"] == "held"
    assert 0 <= workers["w-busy"]["heartbeat_age"] < 30
    assert store.finish(claim, SUCCESS).recorded
    store.unregister_worker("w-busy")


# --- the one write ------------------------------------------------------------------------
def test_dlq_retry_by_id_and_all(server: DashboardServer, store: InsightsStore) -> None:
    for job_id in ("dlq-a", "dlq-b", "dlq-c"):
        make_dead(store, job_id)
    reply = server.post_as_page("/api/dlq/retry", {"ids": ["dlq-a"]})
    assert (reply.status, reply.json()) == (200, {"retried": 1})
    job = store.get_job("dlq-a")
    assert job is not None and (job.state, job.attempts) == (JobState.PENDING, 0)
    again = server.post_as_page("/api/dlq/retry", {"ids": ["dlq-a"]})
    assert again.status == 409 and "not dead" in again.json()["error"]
    unknown = server.post_as_page("/api/dlq/retry", {"ids": ["dlq-b", "nope"]})
    assert unknown.status == 404
    assert store.get_job("dlq-b").state is JobState.DEAD  # type: ignore[union-attr]  # all or none
    for bad in ({"ids": []}, {"ids": "dlq-b"}, {"all": "yes"}, {"other": 1}, [1]):
        assert server.post_as_page("/api/dlq/retry", bad).status == 400, bad
    dead = store.counts()[JobState.DEAD]
    reply = server.post_as_page("/api/dlq/retry", {"all": True})
    assert reply.json() == {"retried": dead}
    assert store.counts()[JobState.DEAD] == 0


def test_a_get_never_changes_anything(server: DashboardServer, store: InsightsStore) -> None:
    make_dead(store, "get-dead")
    for path in ("/api/dlq/retry", "/api/dlq/retry?ids=get-dead&all=true"):
        assert server.get(path).status == 405
    assert server.request("HEAD", "/api/dlq/retry").status == 405
    for method in ("PUT", "DELETE", "PATCH"):
        reply = server.request(method, "/api/dlq/retry", body={"all": True})
        assert reply.status in (403, 405), method  # no custom header: refused first
        reply = server.request(
            method, "/api/dlq/retry", body={"all": True}, headers={"X-Queuectl-Request": "1"}
        )
        assert reply.status == 405, method
    assert store.get_job("get-dead").state is JobState.DEAD  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-Queuectl-Request": None}, 403),  # a plain cross-site form cannot set it
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Sec-Fetch-Site": "same-site"}, 403),
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ],
)
def test_cross_site_state_changes_are_refused(
    server: DashboardServer, store: InsightsStore, headers: dict[str, str | None], status: int
) -> None:
    job_id = f"csrf-{len(store.search_jobs(text='csrf-').jobs)}"
    make_dead(store, job_id)
    sent = {
        "X-Queuectl-Request": "1",
        "Origin": server.base,
        "Sec-Fetch-Site": "same-origin",
        "Content-Type": "application/json",
    }
    sent.update(headers)  # type: ignore[arg-type]
    reply = server.request(
        "POST",
        "/api/dlq/retry",
        raw_body=b'{"ids": ["%s"]}' % job_id.encode(),
        headers={k: v for k, v in sent.items() if v is not None},
    )
    assert reply.status == status, reply.body
    assert store.get_job(job_id).state is JobState.DEAD  # type: ignore[union-attr]


def test_a_rebound_domain_is_refused_on_loopback(server: DashboardServer) -> None:
    for host in ("evil.example", f"evil.example:{server.port}", "10.1.2.3"):
        reply = server.get("/api/stats", headers={"Host": host})
        assert reply.status == 421, host
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "[::1]"):
        assert server.get("/api/stats", headers={"Host": host}).status == 200, host


# --- /metrics ---------------------------------------------------------------------------
def scrape(server: DashboardServer) -> dict[str, float]:
    reply = server.get("/metrics")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def test_metrics_parse_with_the_stores_values(
    server: DashboardServer, store: InsightsStore
) -> None:
    run_job(store, "metrics-ok")
    samples = scrape(server)
    counts = store.counts()
    totals = store.run_totals()
    for state in JobState:
        assert samples[f"queuectl_jobs{{state={state.value}}}"] == counts[state]
    assert samples["queuectl_jobs_completed_total"] == totals.completed
    assert samples["queuectl_runs_failed_total"] == totals.failed
    assert samples["queuectl_job_retries_total"] == totals.retries
    assert samples["queuectl_jobs_dead_lettered_total"] == totals.dead_lettered
    assert samples["queuectl_job_duration_seconds_count"] == totals.completed + totals.failed
    assert samples["queuectl_job_duration_seconds_bucket{le=+Inf}"] == totals.durations.total
    assert samples["queuectl_job_duration_seconds_sum"] == pytest.approx(
        totals.durations.sum_seconds
    )
    buckets = [
        v for k, v in samples.items() if k.startswith("queuectl_job_duration_seconds_bucket")
    ]
    assert buckets == sorted(buckets) and len(buckets) == 23
    assert samples["queuectl_workers"] >= 1  # w-test
    assert samples["queuectl_oldest_pending_age_seconds"] >= 0


def test_counters_never_decrease_even_when_jobs_are_purged(
    server: DashboardServer, store: InsightsStore
) -> None:
    names = (
        "queuectl_jobs_completed_total",
        "queuectl_runs_failed_total",
        "queuectl_job_duration_seconds_count",
        "queuectl_job_duration_seconds_sum",
    )
    before = scrape(server)
    run_job(store, "purge-ok")
    make_dead(store, "purge-dead")
    grown = scrape(server)
    assert grown["queuectl_jobs_completed_total"] == before["queuectl_jobs_completed_total"] + 1
    assert grown["queuectl_runs_failed_total"] == before["queuectl_runs_failed_total"] + 1
    with sqlite3.connect(server.location.path or "") as conn:  # what purge does
        for table, column in (("runs", "job_id"), ("jobs", "id")):
            conn.execute(f"DELETE FROM {table} WHERE {column} IN ('purge-ok', 'purge-dead')")
    after = scrape(server)
    for name in names:
        assert after[name] == grown[name], name
    assert after["queuectl_jobs{state=dead}"] == grown["queuectl_jobs{state=dead}"] - 1


# --- off loopback: the token -----------------------------------------------------------
@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    dashboard = DashboardServer(
        tmp_path_factory.mktemp("guarded") / "home", "--host", "0.0.0.0", "--token", TOKEN
    )
    yield dashboard
    dashboard.stop()


PATHS = (
    "/",
    "/static/app.js",
    "/api/stats",
    "/api/jobs",
    "/api/jobs/x",
    "/api/workers",
    "/metrics",
)


def test_off_loopback_every_request_needs_the_token(guarded: DashboardServer) -> None:
    for path in PATHS:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Cookie": "queuectl_dashboard_1=x"},
        ):
            reply = guarded.get(path, headers=headers, authorized=False)
            assert reply.status == 401, (path, headers)
            assert TOKEN.encode() not in reply.body
        assert guarded.get(path + "?token=wrong", authorized=False).status == 401
        reply = guarded.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert reply.status in (200, 404), path  # 404: job "x" does not exist
    refused = guarded.request("POST", "/api/dlq/retry", body={"all": True}, authorized=False)
    assert refused.status == 401
    refused = guarded.get("/", headers={"Host": "evil.example"}, authorized=False)
    assert refused.status == 401  # token, not host


def test_the_token_once_in_the_url_sets_a_strict_http_only_cookie(guarded: DashboardServer) -> None:
    reply = guarded.get(f"/?token={TOKEN}", authorized=False)
    assert reply.status == 200
    cookie = reply.headers["Set-Cookie"]
    name = f"queuectl_dashboard_{guarded.port}"
    assert cookie.startswith(f"{name}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    with_cookie = {"Cookie": f"{name}={TOKEN}"}
    assert guarded.get("/api/stats", headers=with_cookie, authorized=False).status == 200
    # The cookie authenticates, but a state change still needs the page's own header.
    reply = guarded.request(
        "POST", "/api/dlq/retry", body={"all": True}, headers=with_cookie, authorized=False
    )
    assert reply.status == 403
    reply = guarded.request(
        "POST",
        f"/api/dlq/retry?token={TOKEN}",
        body={"all": True},
        headers={"X-Queuectl-Request": "1"},
        authorized=False,
    )
    assert reply.status == 401, "?token= is for a GET that opens the page, not a POST"
    reply = guarded.request(
        "POST",
        "/api/dlq/retry",
        body={"all": True},
        headers={**with_cookie, "X-Queuectl-Request": "1"},
        authorized=False,
    )
    assert (reply.status, reply.json()) == (200, {"retried": 0})


@pytest.mark.parametrize(
    "others",
    ["theme=dark mode", 'prefs={"a":1}', 'q="unterminated', "path=C:\\x", "=nameless"],
)
def test_the_cookie_login_survives_other_cookies_that_do_not_parse(
    guarded: DashboardServer, others: str
) -> None:
    name = f"queuectl_dashboard_{guarded.port}"
    for cookie in (f"{others}; {name}={TOKEN}", f"{name}={TOKEN}; {others}"):
        reply = guarded.get("/api/stats", headers={"Cookie": cookie}, authorized=False)
        assert reply.status == 200, cookie
    wrong = guarded.get("/api/stats", headers={"Cookie": f"{others}; {name}=x"}, authorized=False)
    assert wrong.status == 401


def test_a_deeply_nested_body_is_a_clear_400_with_the_security_headers(
    server: DashboardServer,
) -> None:
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"ids": ' + b"[" * 100_000, b"\xff\xfe"):
        reply = server.post_as_page(
            "/api/dlq/retry", None, raw_body=body, **{"Content-Type": "application/json"}
        )
        assert reply.status == 400, reply.body[:200]
        assert reply.json()["error"]
        assert reply.headers["Content-Security-Policy"] and reply.headers["X-Frame-Options"]
    assert server.get("/api/stats").status == 200  # still serving


def test_an_unexpected_error_is_a_500_with_the_security_headers() -> None:
    """A bug cannot be triggered through the real server on purpose: the real Guard in
    front of an app that raises, called as uvicorn calls it."""
    from queuectl.dashboard.auth import Guard

    async def broken(scope: object, receive: object, send: object) -> None:
        raise RuntimeError("a bug")

    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/api/stats", "headers": []}
    guard = Guard(broken, token=None, loopback_only=False, port=1)  # type: ignore[arg-type]
    asyncio.run(guard(scope, receive, send))  # type: ignore[arg-type]
    start = sent[0]
    headers = dict(start["headers"])  # type: ignore[call-overload]
    assert start["status"] == 500
    assert b"content-security-policy" in headers and b"x-frame-options" in headers
    assert b"a bug" not in b"".join(m.get("body", b"") for m in sent)  # type: ignore[misc]


# --- the command ----------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_a_generated_token_is_printed_when_none_is_given(tmp_path: Path, host: str) -> None:
    # Loopback too: the queue's files are private to their owner, the dashboard as well.
    dashboard = DashboardServer(tmp_path / "home", "--host", host, own_token=False)
    try:
        assert dashboard.process.stdout is not None
        printed = dashboard.process.stdout.readline() + dashboard.process.stdout.readline()
        match = re.search(r"http://\S+:(\d+)/\?token=(\S+)", printed)
        assert match, printed
        assert int(match.group(1)) == dashboard.port
        assert dashboard.get("/api/stats").status == 401
        assert dashboard.post_as_page("/api/dlq/retry", {"all": True}).status == 401
        authorized = {"Authorization": f"Bearer {match.group(2)}"}
        assert dashboard.get("/api/stats", headers=authorized).status == 200
        assert dashboard.get(f"/?token={match.group(2)}").status == 200
    finally:
        dashboard.stop()


def test_on_loopback_every_request_needs_the_token(
    server: DashboardServer, store: InsightsStore
) -> None:
    make_dead(store, "tokenless-retry")
    for path in PATHS:
        assert server.get(path, authorized=False).status == 401, path
    reply = server.post_as_page("/api/dlq/retry", {"all": True}, authorized=False)
    assert reply.status == 401
    assert store.get_job("tokenless-retry").state is JobState.DEAD  # type: ignore[union-attr]
    assert server.post_as_page("/api/dlq/retry", {"ids": ["tokenless-retry"]}).status == 200


def test_no_token_is_an_explicit_opt_out_on_loopback_only(
    tmp_path: Path, server: DashboardServer
) -> None:
    open_dashboard = DashboardServer(tmp_path / "home", "--no-token")
    try:
        assert open_dashboard.get("/api/stats").status == 200
        assert open_dashboard.process.stdout is not None
        assert "no token" in open_dashboard.process.stdout.readline() + (
            open_dashboard.process.stdout.readline()
        )
    finally:
        open_dashboard.stop()
    assert_error(server.cli("dashboard", "--no-token", "--host", "0.0.0.0"), 2)
    assert_error(server.cli("dashboard", "--no-token", "--token", "x" * 20), 2)


def test_bad_ports_and_busy_ports(server: DashboardServer) -> None:
    assert_error(server.cli("dashboard", "--port", "70000"), 2)
    assert_error(server.cli("dashboard", "--host", "0.0.0.0", "--token", "short"), 2)
    assert_error(server.cli("dashboard", "--token", "sixteen chars; x=1"), 2)
    busy = server.cli("dashboard", "--port", str(server.port))
    assert_error(busy, 1)
    assert "cannot listen" in busy.stderr
