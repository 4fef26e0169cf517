"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright):
the page loads, its counts match the store, a job enqueued from the CLI appears without a
reload, the DLQ retry button works, and a command full of markup stays text.

Screenshots go to each test's tmp_path. Without Chromium or Playwright these tests skip
with the reason, except in CI (CI set), where .ci/run installs Chromium: there they fail.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from queuectl.domain import JobState
from queuectl.store.insights import InsightsStore
from tests.dashboard.server import DashboardServer
from tests.helpers import SUCCESS, fail, live_worker_info, new_job, wait_until


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the browser tests: .ci/run installs chromium)")
    pytest.skip(reason, allow_module_level=True)


CHROMIUM = os.environ.get("QUEUECTL_TEST_CHROMIUM") or shutil.which("chromium") or ""
if not CHROMIUM or not os.access(CHROMIUM, os.X_OK):
    _unavailable("no chromium executable (on Debian: apt-get install chromium)")
try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:
    _unavailable("playwright is not installed (pip install -e '.[dev]')")

# Never `playwright install`: Debian's Chromium, kept quiet and off the network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-token-0123456789abcdef"
_priorities = itertools.count(1_000_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    dashboard = DashboardServer(tmp_path_factory.mktemp("browser") / "home")
    store = dashboard.store()
    store.set_config("backoff_base", "1000")
    store.register_worker(live_worker_info("w-browser"))
    store.close()
    yield dashboard
    dashboard.stop()


class Tab:
    """A page plus what it reported: dialogs (alert) and script errors."""

    def __init__(self, page: Page, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def tab(browser: Browser, server: DashboardServer, tmp_path: Path) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    opened = Tab(context.new_page(), tmp_path)
    yield opened
    opened.shot("last")
    context.close()
    assert opened.errors == [], "script errors on the page"
    assert opened.dialogs == [], "a dialog opened (alert from injected markup?)"


def run_job(store: InsightsStore, job_id: str, *, succeed: bool, max_retries: int = 3) -> None:
    store.enqueue([new_job(job_id, priority=next(_priorities), max_retries=max_retries)])
    store.heartbeat("w-browser")
    claim = store.claim("w-browser")
    assert claim is not None and claim.job.id == job_id
    assert store.finish(claim, SUCCESS if succeed else fail()).recorded


def expect_counts(tab: Tab, store: InsightsStore) -> None:
    counts = store.counts()
    for state in JobState:
        expect(tab.page.locator(f'[data-count="{state.value}"]')).to_have_text(f"{counts[state]:,}")
    expect(tab.page.locator('[data-count="total"]')).to_have_text(f"{sum(counts.values()):,}")


def test_the_page_loads_and_its_counts_match_the_store(
    tab: Tab, server: DashboardServer, store: InsightsStore
) -> None:
    store.enqueue([new_job(f"load-{i}", command=f"echo {i}") for i in range(3)])
    run_job(store, "load-done", succeed=True)
    run_job(store, "load-dead", succeed=False, max_retries=1)
    response = tab.page.goto(server.page_url())
    assert response is not None and response.status == 200
    expect(tab.page.locator("#live")).to_contain_text("live")
    expect_counts(tab, store)
    expect(tab.page.locator('#jobs-table tr[data-id="load-0"]')).to_be_visible()
    expect(tab.page.locator('#workers-table tr[data-id="w-browser"]')).to_be_visible()
    expect(tab.page.locator("#runs")).to_have_text("1 / 1")
    tab.shot("loaded")


def test_a_job_enqueued_from_the_cli_appears_without_a_reload(
    tab: Tab, server: DashboardServer, store: InsightsStore
) -> None:
    tab.page.goto(server.page_url())
    expect_counts(tab, store)
    tab.page.evaluate("window.notReloaded = true")
    result = server.cli("enqueue", '{"id": "from-the-cli", "command": "echo hi", "delay": 3600}')
    assert result.returncode == 0, result
    expect(tab.page.locator('#jobs-table tr[data-id="from-the-cli"]')).to_be_visible()
    expect_counts(tab, store)
    assert tab.page.evaluate("window.notReloaded") is True
    tab.shot("enqueued")


def test_the_dlq_retry_button_moves_a_dead_job_to_pending(
    tab: Tab, server: DashboardServer, store: InsightsStore
) -> None:
    run_job(store, "retry-me", succeed=False, max_retries=1)
    tab.page.goto(server.page_url())
    row = tab.page.locator('#dlq-table tr[data-id="retry-me"]')
    expect(row).to_be_visible()
    tab.shot("dead")
    row.locator("button.retry").click()

    def pending() -> bool:
        job = store.get_job("retry-me")
        return job is not None and job.state is JobState.PENDING

    wait_until(pending, timeout=10, what="retry-me to be pending")
    expect(row).to_have_count(0)
    expect(tab.page.locator('#jobs-table tr[data-id="retry-me"] .state')).to_have_text("pending")
    tab.shot("retried")

    # "Retry all" asks for a second click (no modal dialog), then empties the DLQ.
    run_job(store, "retry-all-1", succeed=False, max_retries=1)
    run_job(store, "retry-all-2", succeed=False, max_retries=1)
    expect(tab.page.locator('#dlq-table tr[data-id="retry-all-2"]')).to_be_visible()
    button = tab.page.locator("#retry-all")
    button.click()
    expect(button).to_contain_text("Confirm")
    assert store.counts()[JobState.DEAD] >= 2, "one click retries nothing"
    button.click()
    wait_until(lambda: store.counts()[JobState.DEAD] == 0, timeout=10, what="an empty DLQ")
    expect(tab.page.locator("#dlq-empty")).to_be_visible()


MARKUP = "<script>alert(1)</script>"
IMAGE = '<img src=x onerror="alert(2)">'


def test_commands_and_ids_with_markup_render_as_text(
    tab: Tab, server: DashboardServer, store: InsightsStore
) -> None:
    # Scheduled an hour ahead: shown, never run.
    store.enqueue(
        [
            new_job("xss-script", command=MARKUP, delay=3600),
            new_job("<b>xss-id</b>", command=IMAGE, delay=3600),
        ]
    )
    tab.page.goto(server.page_url())
    cell = tab.page.locator('#jobs-table tr[data-id="xss-script"] td').nth(1)
    expect(cell).to_have_text(MARKUP)
    expect(tab.page.locator('#jobs-table tr[data-id="<b>xss-id</b>"] td').nth(1)).to_have_text(
        IMAGE
    )
    expect(tab.page.locator('#jobs-table tr[data-id="<b>xss-id</b>"] td').first).to_have_text(
        "<b>xss-id</b>"
    )
    assert tab.page.locator("main script, main img, main b").count() == 0
    tab.page.locator('#jobs-table tr[data-id="xss-script"]').click()
    expect(tab.page.locator("#job-command")).to_have_text(MARKUP)
    assert tab.page.locator("aside script, aside img").count() == 0
    assert tab.page.evaluate("document.scripts.length") == 1  # app.js only
    tab.page.wait_for_timeout(500)  # an injected handler would have fired by now
    assert tab.dialogs == []
    tab.shot("markup")


def test_lists_show_a_long_command_shortened_and_the_job_panel_whole(
    tab: Tab, server: DashboardServer, store: InsightsStore
) -> None:
    long = "echo " + " ".join(f"word{i}" for i in range(20_000))
    store.enqueue([new_job("long-command", command=long, delay=3600)])
    tab.page.goto(server.page_url())
    cell = tab.page.locator('#jobs-table tr[data-id="long-command"] td').nth(1)
    expect(cell).to_have_text(long[:59] + "…")
    title = cell.get_attribute("title") or ""
    assert title == long[:200] + "…"
    tab.page.locator('#jobs-table tr[data-id="long-command"]').click()
    expect(tab.page.locator("#job-command")).to_have_text(long)
    tab.shot("long-command")


ODD_IDS = [".", "..", "a/b", "%2e", "%2E%2e", "./..", "a?b#c", "100%", "ジョブ ✓ é"]


@pytest.mark.parametrize("job_id", ODD_IDS)
def test_every_valid_id_opens_its_job(
    tab: Tab, server: DashboardServer, store: InsightsStore, job_id: str
) -> None:
    command = f"echo the job called {job_id}"
    if store.get_job(job_id) is None:
        store.enqueue([new_job(job_id, command=command, delay=3600)])
    tab.page.goto(server.page_url())
    row = tab.page.locator("#jobs-table tr").filter(has=tab.page.get_by_text(command, exact=True))
    row.click()
    expect(tab.page.locator("#job-title")).to_have_text(f"Job {job_id}")
    expect(tab.page.locator("#job-command")).to_have_text(command)
    # The link in the address bar opens the same job after a reload.
    tab.page.reload()
    expect(tab.page.locator("#job-command")).to_have_text(command)
    expect(tab.page.locator("#job-title")).to_have_text(f"Job {job_id}")


def test_a_job_page_shows_attempts_and_output_of_a_real_worker(
    tab: Tab, server: DashboardServer, store: InsightsStore
) -> None:
    spec = '{"id": "worked", "command": "echo hello from the job; exit 2", "max_retries": 1}'
    assert server.cli("enqueue", spec).returncode == 0
    result = server.cli("worker", "run", "--burst")
    assert result.returncode == 0, result
    tab.page.goto(server.page_url("#job=worked"))
    expect(tab.page.locator("#job-panel")).to_be_visible()
    expect(tab.page.locator("#job-output")).to_have_text("hello from the job\n")
    expect(tab.page.locator('#runs-table tr[data-run="1"] td').nth(3)).to_have_text("exit 2")
    expect(tab.page.locator("#job-retry")).to_be_visible()  # it is dead
    tab.shot("job")


def test_off_loopback_the_token_link_opens_the_page_once(browser: Browser, tmp_path: Path) -> None:
    guarded = DashboardServer(tmp_path / "home", "--host", "0.0.0.0", "--token", TOKEN)
    try:
        context = browser.new_context()
        page = context.new_page()
        refused = page.goto(guarded.base + "/")
        assert refused is not None and refused.status == 401
        page.goto(guarded.base + f"/?token={TOKEN}")
        expect(page.locator("#live")).to_contain_text("live")
        assert "token" not in page.url, "the token stays out of the address bar"
        (cookie,) = context.cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""
        page.reload()
        expect(page.locator("#live")).to_contain_text("live")
        page.screenshot(path=str(tmp_path / "token.png"))
        context.close()
    finally:
        guarded.stop()
