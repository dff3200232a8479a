"""The dashboard in a real headless Chromium (Debian's, at /usr/bin/chromium, driven by
Playwright's Python package) against a real ``swarm up`` that serves the page and the API
(``[supervisor] http_port``): agents shown by name, an item completed by the running
swarm shown without a reload, text a user wrote shown as text, mutations refused without
the token, an item's page with its family and trace, and no console error anywhere.

``make pytest`` installs the browser first (scripts/ensure-chromium.sh); when it cannot
be started these tests fail, they never skip. Screenshots are kept in test-artifacts/.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from .conftest import SWARM, wait_for

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TOKEN = "page-test-" + secrets.token_hex(8)


@dataclass
class Swarm:
    root: Path
    url: str
    env: dict[str, str]

    def add(self, work_type: str, description: str, *args: str) -> str:
        done = subprocess.run(
            [SWARM, "add", "-q", work_type, description, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.load(response)

    def item(self, work_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/work/{work_id}")["item"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIG = """\
[store]
lease_s = 30

[supervisor]
http_port = {port}

[[agents]]
name = "w"
count = 2
work_types = ["echo"]
stop_timeout_s = 2
"""


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    """One swarm for the module: two command agents that take only ``echo`` work, so
    items of any other type stay pending for the tests that need them to."""
    root = tmp_path_factory.mktemp("web")
    port = _free_port()
    (root / "swarm.toml").write_text(CONFIG.format(port=port))
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
    env.update(SWARM_HTTP_TOKEN=TOKEN, TELEMETRY_SPANS_FILE=str(root / "telemetry_spans.jsonl"))
    log = (root / "up.log").open("w")
    proc = subprocess.Popen(
        [SWARM, "up"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    web = Swarm(root, f"http://127.0.0.1:{port}", env)

    def serving() -> bool:
        assert proc.poll() is None, (root / "up.log").read_text()
        try:
            return len(web.get("/api/agents")["agents"]) == 2
        except (urllib.error.URLError, ConnectionError):
            return False

    try:
        wait_for(serving, timeout=30)
        yield web
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        except PlaywrightError as exc:
            first = str(exc).strip().splitlines()[0]
            pytest.fail(
                f"cannot start Chromium at {CHROMIUM} ({first}): run scripts/ensure-chromium.sh"
                " (make pytest does) or apt-get install chromium",
                pytrace=False,
            )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    """A page and what it said: console errors, uncaught errors, dialogs (dismissed)."""

    page: Page
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def tab(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(10_000)
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
    page.on("dialog", on_dialog)
    try:
        yield watched
    finally:
        context.close()


def _dashboard(tab: Watched, swarm: Swarm) -> Page:
    page = tab.page
    page.goto(swarm.url + "/")
    page.locator('#groups [data-agent="w-1"]').wait_for()
    page.locator("#live.live-live").wait_for()
    return page


def test_the_page_shows_each_agent_by_name_and_loads_with_no_console_error(
    tab: Watched, swarm: Swarm
) -> None:
    page = _dashboard(tab, swarm)
    names = page.locator("#groups [data-agent] .agent-name").all_inner_texts()
    assert sorted(names) == ["w-1", "w-2"]
    row = page.locator('#groups [data-agent="w-2"]')
    assert "running" in row.inner_text()
    assert page.locator('#groups [data-group="w"] h3').inner_text().startswith("w")
    # Every section loaded (none says "Could not load") and the chart is drawn.
    page.locator("#throughput svg.chart").wait_for()
    page.locator("#queue-counts .count").first.wait_for()
    assert "Could not load" not in page.locator("main#dashboard-view").inner_text()
    assert tab.errors == []


def test_an_item_the_swarm_completes_appears_within_2_s_without_a_reload(
    tab: Watched, swarm: Swarm
) -> None:
    page = _dashboard(tab, swarm)
    page.evaluate("window.loadedOnce = true")
    work_id = swarm.add("echo", "say hello", "--payload", '{"argv": ["echo", "hello"]}')
    row = page.locator(f'#finished tr[data-item="{work_id}"][data-status="completed"]')
    row.wait_for()
    seen = time.time()
    item = swarm.item(work_id)
    assert item["status"] == "completed"
    assert seen - item["completed_at"] < 2.0, f"shown {seen - item['completed_at']:.2f} s late"
    assert page.evaluate("window.loadedOnce") is True  # the same page: no reload
    assert "say hello" in row.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
    assert tab.errors == []


def test_what_a_user_wrote_is_shown_as_text_and_never_run(tab: Watched, swarm: Swarm) -> None:
    script = "<script>alert(1)</script>"
    payload = json.dumps({"html": "<img src=x onerror=alert(2)>"})
    work_id = swarm.add("held", script, "--payload", payload)  # no agent takes "held"
    page = _dashboard(tab, swarm)
    cell = page.locator(f'#queue tr[data-item="{work_id}"] .description')
    cell.wait_for()
    assert cell.inner_text() == script
    assert page.locator("main script, main img").count() == 0

    page.locator(f'#queue tr[data-item="{work_id}"] a').first.click()
    page.wait_for_url(f"**/work/{work_id}")
    page.locator("#summary .description").wait_for()
    assert page.locator("#summary .description").inner_text() == script
    assert "<img src=x onerror=alert(2)>" in page.locator("#payload").inner_text()
    assert page.locator("main script, main img").count() == 0
    assert tab.dialogs == []
    assert tab.errors == []


def test_a_mutation_without_the_token_is_refused_and_the_page_asks_for_it(
    tab: Watched, swarm: Swarm
) -> None:
    work_id = swarm.add("held", "cancel me")
    page = _dashboard(tab, swarm)
    # Straight from the page, without the header: refused.
    status = page.evaluate(
        "id => fetch(`/api/work/${id}/cancel`, {method: 'POST'}).then(r => r.status)", work_id
    )
    assert status == 401
    # Through the button: refused, so the page asks for the token; the item is untouched.
    page.locator(f'#queue tr[data-item="{work_id}"] button.cancel').click()
    page.locator("#token-dialog[open]").wait_for()
    assert swarm.item(work_id)["status"] == "pending"
    page.fill("#token-input", TOKEN)
    page.click("#token-ok")
    wait_for(lambda: swarm.item(work_id)["status"] == "cancelled", timeout=10)
    # Kept for the tab in sessionStorage, never in a cookie.
    assert page.evaluate("sessionStorage.getItem('swarm.token')") == TOKEN
    assert page.evaluate("document.cookie") == ""
    page.locator(f'#queue tr[data-item="{work_id}"]').wait_for(state="detached")
    assert tab.dialogs == []


def test_an_items_page_links_its_family_and_draws_its_trace_across_processes(
    tab: Watched, swarm: Swarm
) -> None:
    parent = swarm.add("echo", "first", "--payload", '{"argv": ["echo", "one"]}')
    child = swarm.add("echo", "then", "--after", parent, "--payload", '{"argv": ["echo", "two"]}')
    wait_for(lambda: swarm.item(child)["status"] == "completed", timeout=20)

    def processes() -> set[tuple[str, int]]:  # agents write spans up to a second late
        spans = swarm.get(f"/api/work/{child}")["spans"]
        found = {(s["resource"]["swarm.role"], s["resource"]["process.pid"]) for s in spans}
        return found if any(role == "agent" for role, _ in found) else set()

    wanted = wait_for(processes, timeout=10)
    page = tab.page
    page.goto(f"{swarm.url}/work/{child}")
    page.locator("#item-status .badge.st-completed").wait_for()
    assert page.locator("#item-title").inner_text() == child
    assert "two" in page.locator("#result").inner_text()
    link = page.locator(f'#family a[href="/work/{parent}"]')
    assert link.count() == 1
    # The trace: bars on lanes, one lane per process that touched the item.
    page.locator("#trace .tl-bar").first.wait_for()
    lanes = page.locator("#trace .tl-label").all_inner_texts()
    # One lane per process: the CLI that added it, the agent that ran it, …
    assert sorted(lane.split()[0] for lane in lanes) == sorted(role for role, _ in wanted)
    assert {int(lane.split("(pid ")[1].split()[0]) for lane in lanes} == {p for _, p in wanted}
    assert page.locator("#attempts tbody tr").count() >= 1
    link.click()
    page.wait_for_url(f"**/work/{parent}")
    page.locator(f'#family a[href="/work/{child}"]').wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "item.png"), full_page=True)
    assert tab.errors == []


def test_off_loopback_the_page_takes_the_printed_token_or_asks_for_it(
    tab: Watched, browser: Browser, swarm: Swarm
) -> None:
    """``swarm serve --host 0.0.0.0`` without SWARM_HTTP_TOKEN: reads need the token
    too. The address it prints hands the page the token (after '#', so no server sees
    it); without it the page asks, and a wrong one is asked for again."""
    env = {k: v for k, v in swarm.env.items() if k != "SWARM_HTTP_TOKEN"}
    serve = subprocess.Popen(
        [SWARM, "serve", "--host", "0.0.0.0", "--port", "0"],
        cwd=swarm.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline()
        address = first.split()[-1]  # http://0.0.0.0:PORT/#token=…
        assert "#token=" in address, first
        token = address.split("#token=")[1]
        url = address.replace("0.0.0.0", "127.0.0.1")
        page = tab.page
        page.goto(url)
        page.locator('#groups [data-agent="w-1"]').wait_for()
        page.locator("#live.live-live").wait_for()
        assert "#" not in page.url  # taken out of the address bar
        assert page.evaluate("sessionStorage.getItem('swarm.token')") == token

        other = browser.new_context()  # a new tab: no token kept
        try:
            bare = other.new_page()
            bare.goto(url.split("#")[0])
            bare.locator("#token-dialog[open]").wait_for()
            bare.fill("#token-input", "not-the-token")
            bare.click("#token-ok")
            bare.locator("#token-dialog[open]").wait_for()
            assert "wrong token" in bare.locator("#token-reason").inner_text()
            bare.fill("#token-input", token)
            bare.click("#token-ok")
            bare.locator('#groups [data-agent="w-2"]').wait_for()
            bare.locator("#live.live-live").wait_for()
        finally:
            other.close()
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=10)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        serve.stdout.close()
    assert tab.errors == []


def test_a_groups_restart_button_restarts_its_agents(tab: Watched, swarm: Swarm) -> None:
    before = {a["name"]: a["pid"] for a in swarm.get("/api/agents")["agents"]}
    page = tab.page
    page.goto(f"{swarm.url}/#token={TOKEN}")  # as swarm serve prints the address
    page.locator('#groups [data-agent="w-1"]').wait_for()
    page.locator('#groups [data-group="w"] button.group-restart').click()
    page.locator("#notice.ok").wait_for()
    assert page.locator("#notice").inner_text() == "restart: w"

    def restarted() -> dict[str, int] | None:
        agents = swarm.get("/api/agents")["agents"]
        now = {a["name"]: a["pid"] for a in agents if a["state"] == "running"}
        fresh = len(now) == 2 and all(now[name] != pid for name, pid in before.items())
        return now if fresh else None

    after = wait_for(restarted, timeout=30)
    for name, pid in after.items():  # the page shows the new processes (re-read every 5 s)
        page.locator(f'#groups [data-agent="{name}"] td.pid:text-is("{pid}")').wait_for()
    assert tab.errors == []
