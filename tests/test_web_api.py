"""The HTTP API through an HTTP client against real `swarm serve` and `swarm up`
processes: work, agents, groups, the token, errors, and the event stream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from orchestrator.locations import DEFAULT_AGENTS_DIR, without_password

from .conftest import SWARM
from .test_layers import offenders
from .test_supervisor import write_config
from .web_helpers import TOKEN, Events, Served, env, free_port, swarm, wait_for

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def served(tmp_path: Path) -> Served:
    server = Served(tmp_path)
    yield server
    server.close()


def test_work_through_the_api_is_the_cli_s_work(served: Served, tmp_path: Path) -> None:
    # Enqueue: the CLI's checks and one line of JSON on bad input.
    added = served.post("/api/work", {"work_type": "feature", "description": SCRIPT})
    assert added.status_code == 201, added.text
    first = added.json()["item"]
    assert first["description"] == SCRIPT and first["status"] == "pending"
    urgent = served.post("/api/work", {"work_type": "x", "description": "y", "priority": "urgent"})
    assert urgent.status_code == 400
    assert urgent.json() == {
        "error": "unknown priority 'urgent': use one of critical, high, medium, low"
    }
    for bad, message in [
        (b"{nope", "the body is not valid JSON"),
        (b'{"work_type": "x"}', "description is required"),
        (b'{"work_type": "x", "description": "y", "colour": 1}', "unknown field(s) colour"),
    ]:
        answer = served.client.post("/api/work", content=bad, headers=served.auth())
        assert answer.status_code == 400 and answer.json()["error"].startswith(message)
        assert "\n" not in answer.json()["error"]
    missing = served.post("/api/work", {"work_type": "x", "description": "y", "after": ["nope"]})
    assert missing.status_code == 400 and "unknown parent work: nope" in missing.json()["error"]
    # The same key twice: the holder, 200, nothing added (swarm add --key).
    keyed = {"work_type": "report", "description": "daily", "priority": "high", "key": "daily"}
    assert served.post("/api/work", keyed).status_code == 201
    again = served.post("/api/work", keyed)
    assert again.status_code == 200 and again.json()["added"] is False
    child = served.post(
        "/api/work", {"work_type": "t", "description": "after", "after": [first["work_item_id"]]}
    ).json()["item"]
    assert child["status"] == "blocked"
    swarm(tmp_path, "add", "bug_fix", "from the cli", "critical", "core")

    # Listing: list-work's order and filters, paged.
    cli = json.loads(swarm(tmp_path, "list-work", "--json").stdout)
    listed = served.get("/api/work").json()
    assert [i["work_item_id"] for i in listed["items"]] == [i["work_item_id"] for i in cli]
    assert listed["total"] == 4 and listed["limit"] == 100
    page = served.get("/api/work", params={"limit": 2, "offset": 1}).json()
    assert [i["work_item_id"] for i in page["items"]] == [i["work_item_id"] for i in cli[1:3]]
    typed = served.get("/api/work?type=report,bug_fix").json()["items"]
    assert [i["work_type"] for i in typed] == ["bug_fix", "report"]
    assert served.get("/api/work?status=blocked").json()["total"] == 1
    assert served.get("/api/work?team=core").json()["total"] == 1
    for query, message in [
        ("status=done", "unknown status 'done'"),
        ("limit=0", "limit 0 is out of range"),
        ("limit=ten", "limit 'ten' is not a whole number"),
    ]:
        answer = served.get(f"/api/work?{query}")
        assert answer.status_code == 400 and answer.json()["error"].startswith(message)

    # One item: its parents, children and the spans of its trace.
    detail = served.get(f"/api/work/{first['work_item_id']}").json()
    assert detail["item"]["description"] == SCRIPT
    assert [c["work_item_id"] for c in detail["children"]] == [child["work_item_id"]]
    assert "swarm.add_work" in {s["name"] for s in detail["spans"]}
    parents = served.get(f"/api/work/{child['work_item_id']}").json()["parents"]
    assert [p["work_item_id"] for p in parents] == [first["work_item_id"]]
    assert served.get("/api/work/work_nope").status_code == 404

    # Cancel, retry: the store's rules, the CLI's messages.
    cancelled = served.post(f"/api/work/{first['work_item_id']}/cancel", {"reason": "no"})
    assert cancelled.status_code == 200 and cancelled.json()["item"]["status"] == "cancelled"
    assert served.get(f"/api/work/{child['work_item_id']}").json()["item"]["status"] == "cancelled"
    twice = served.post(f"/api/work/{first['work_item_id']}/cancel")
    cli_twice = swarm(tmp_path, "cancel", first["work_item_id"])
    assert twice.status_code == 409 and cli_twice.returncode == 3
    assert f"swarm: error: {twice.json()['error']}" in cli_twice.stderr
    retried = served.post(f"/api/work/{first['work_item_id']}/retry")
    assert retried.status_code == 200 and retried.json()["item"]["status"] == "pending"
    assert served.post(f"/api/work/{first['work_item_id']}/retry").status_code == 409
    assert served.post("/api/work/work_nope/cancel").status_code == 404

    # Counts, throughput, health, stats, cost, limits, metrics, the schema, the page.
    assert served.get("/api/queue").json()["work"] == {"blocked": 1, "pending": 3}
    assert len(served.get("/api/throughput?window=1h&bucket=60").json()["buckets"]) == 60
    assert served.get("/api/throughput?window=1h&bucket=1").status_code == 400
    assert 0 <= served.get("/api/health").json()["health_score"] <= 100
    assert "swarm.add_work" in served.get("/api/stats?window=1h").json()["operations"]
    assert served.get("/api/stats?window=soon").status_code == 400
    assert served.get("/api/cost?by=colour").status_code == 400
    assert served.get("/api/limits").json() == {"limits": [], "budgets": []}
    assert served.get("/api/worktrees").json() == {"worktrees": []}
    assert "swarm_work_items" in served.get("/metrics").text
    schema = served.get("/api/openapi.json").json()
    assert {"/api/work", "/api/work/{id}", "/api/events", "/api/groups/{name}/{action}"} <= set(
        schema["paths"]
    )
    assert served.get("/").headers["content-type"].startswith("text/html")
    assert served.get("/api/nope").json() == {"error": "no such route: GET /api/nope"}
    assert served.client.delete("/api/work", headers=served.auth()).status_code == 405


def test_changes_need_the_token_and_loopback_needs_a_loopback_host(
    served: Served, tmp_path: Path
) -> None:
    refused = [
        served.post("/api/work", {"work_type": "x", "description": "y"}, token=False),
        served.client.post(
            "/api/work",
            content=b'{"work_type": "x", "description": "y"}',
            headers={"Authorization": "Bearer wrong-token-wrong-token"},
        ),
        # A cookie is no token: a cross-site form cannot act.
        served.client.post(
            "/api/work",
            content=b'{"work_type": "x", "description": "y"}',
            headers={"Cookie": f"token={TOKEN}; Authorization=Bearer {TOKEN}"},
        ),
        served.post("/api/work/work_x/cancel", token=False),
        served.post("/api/groups/w/stop", token=False),
    ]
    assert [r.status_code for r in refused] == [401] * 5
    assert "Authorization: Bearer" in refused[0].json()["error"]
    assert served.get("/api/work").json()["total"] == 0  # nothing was enqueued
    # DNS rebinding: a page of another name resolved to 127.0.0.1 cannot read.
    rebound = served.get("/api/work", headers={"Host": "evil.example:80"})
    assert rebound.status_code == 400
    assert served.get("/api/work", headers={"Host": "localhost"}).status_code == 200


def test_off_loopback_every_request_needs_the_token_printed_once(tmp_path: Path) -> None:
    server = Served(tmp_path, "--host", "0.0.0.0", token=None, tty=True)
    try:
        assert server.token and len(server.token) >= 16
        assert server.output is not None
        assert "token generated for this run" in server.output.readline()
        assert server.get("/api/work").status_code == 401
        assert server.get("/metrics").status_code == 401
        assert server.get("/api/work", headers=server.auth()).status_code == 200
        assert server.post("/api/work", {"work_type": "a", "description": "b"}).status_code == 201
        assert server.get("/").status_code == 200  # the page itself holds no data
    finally:
        err = server.close()
    written = [
        p for p in tmp_path.rglob("*") if p.is_file() and server.token in p.read_text("latin-1")
    ]
    assert written == [] and server.token not in err


def test_a_generated_token_is_never_written_to_a_pipe_or_file(tmp_path: Path) -> None:
    # Off loopback, output to a file: nothing could read without the token, and it
    # cannot be shown, so serve refuses to start until SWARM_HTTP_TOKEN is set.
    with (tmp_path / "serve.log").open("w") as log:
        refused = subprocess.run(
            [SWARM, "serve", "--host", "0.0.0.0", "--port", "0"],
            cwd=tmp_path,
            env=env(),
            stdout=log,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "swarm: error: swarm serve --host 0.0.0.0: set SWARM_HTTP_TOKEN (output is not a"
        " terminal, so a generated token cannot be shown without writing it down)"
    ]
    # On loopback it serves reads; changes need the token nobody was shown.
    server = Served(tmp_path, token=None)
    try:
        assert "#token=" not in server.first_line
        assert server.output is not None
        assert "set SWARM_HTTP_TOKEN to allow changes" in server.output.readline()
        assert server.get("/api/work").status_code == 200
        refused_change = server.post("/api/work", {"work_type": "a", "description": "b"})
        assert refused_change.status_code == 401
    finally:
        server.close()


def test_a_short_token_is_refused_in_one_line(tmp_path: Path) -> None:
    done = swarm(tmp_path, "serve", "--port", "0", SWARM_HTTP_TOKEN="short")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "swarm: error: SWARM_HTTP_TOKEN is too short (5 characters): use at least 16"
        " (for instance: python3 -c 'import secrets; print(secrets.token_urlsafe())')"
    ]


def test_events_follow_the_store_and_resume_from_last_event_id(
    served: Served, tmp_path: Path
) -> None:
    stream = Events(served.client)
    try:
        work = served.post("/api/work", {"work_type": "t", "description": "one"}).json()["item"]
        claim = swarm(tmp_path, "claim", "--next", "--json", AGENT_ID="agent_web")
        assert claim.returncode == 0, claim.stderr
        swarm(tmp_path, "progress", work["work_item_id"], "50", AGENT_ID="agent_web")
        swarm(tmp_path, "complete", work["work_item_id"], AGENT_ID="agent_web")
        seen = stream.take(4)
    finally:
        stream.close()
    assert [e["event"] for e in seen] == ["enqueued", "claimed", "progress", "completed"]
    assert {e["data"]["work_item_id"] for e in seen} == {work["work_item_id"]}
    assert seen[1]["data"]["agent_id"] == "agent_web" and seen[2]["data"]["progress"] == 50
    attempts = served.get(f"/api/work/{work['work_item_id']}").json()["attempts"]
    assert [(a["span"], a["agent_id"]) for a in attempts] == [("swarm.claim", "agent_web")]

    # While nobody listens: more changes, and a compaction that starts a new journal.
    swarm(tmp_path, "register", "100", "active", "tests", "--agent-id", "agent_two")
    swarm(tmp_path, "add", "t", "two")
    assert swarm(tmp_path, "compact").returncode == 0
    swarm(tmp_path, "add", "t", "three")
    swarm(tmp_path, "deregister", "agent_two")
    resumed = Events(served.client, last_event_id=seen[1]["id"])
    try:
        again = resumed.take(6)
    finally:
        resumed.close()
    assert [e["event"] for e in again] == [
        "progress",
        "completed",
        "agent_up",
        "enqueued",
        "enqueued",
        "agent_down",
    ]
    assert [e["id"] for e in again[:2]] == [e["id"] for e in seen[2:]]
    assert [e["data"]["description"] for e in again[3:5]] == ["two", "three"]
    # Nothing is sent twice: the next event is the next change.
    swarm(tmp_path, "add", "t", "four")
    resumed = Events(served.client, last_event_id=again[-1]["id"])
    try:
        assert [e["data"].get("description") for e in resumed.take(1)] == ["four"]
    finally:
        resumed.close()

    # A position this store never had (recreated, or another store's) reads the
    # current generation again rather than waiting for it forever, after a gap event:
    # what the client shows may not match this log.
    generation = again[-1]["id"].split(".")[0]
    for n, stale in enumerate(("99.0.0", f"{generation}.99999999.0")):
        swarm(tmp_path, "add", "t", f"after {stale}")
        resumed = Events(served.client, last_event_id=stale)
        try:
            gap, *events = resumed.take(5 + n)
        finally:
            resumed.close()
        assert (gap["event"], gap["data"]["last_event_id"]) == ("gap", stale) and "id" not in gap
        descriptions = [e["data"].get("description") for e in events]
        assert descriptions[:3] == ["three", None, "four"]  # None: agent_two's end
        assert descriptions[-1] == f"after {stale}"

    # A generation no longer kept: a gap, then the oldest generation there is.
    assert seen[1]["id"].startswith("1.")
    assert served.get("/api/work").status_code == 200  # the server's store moves to gen 2
    (tmp_path / "agent_coordination" / "journal" / "gen-000001.jsonl").unlink()
    resumed = Events(served.client, last_event_id=seen[1]["id"])
    try:
        gap, first = resumed.take(2)
    finally:
        resumed.close()
    assert (gap["event"], gap["data"]["last_event_id"]) == ("gap", seen[1]["id"])
    assert first["data"]["description"] == "three"
    # An id that is no position at all: a gap, then changes from now on.
    resumed = Events(served.client, last_event_id="not-a-position")
    try:
        swarm(tmp_path, "add", "t", "five")
        gap, first = resumed.take(2)
    finally:
        resumed.close()
    assert (gap["event"], first["data"]["description"]) == ("gap", "five")

    # A stream still open does not hold the server's stop until its timeout.
    Events(served.client)
    assert served.close() == ""


def test_swarm_up_serves_the_api_on_http_port_and_controls_groups(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        '[[agents]]\nname = "w"\ncount = 2\nstop_timeout_s = 1\n',
        '[[work]]\nwork_type = "t"\ndescription = "nap {n}"\ncount = 2\n'
        'payload = { argv = ["sleep", "300"] }\n',
    )
    config.write_text(config.read_text() + f"\n[supervisor]\nhttp_port = {port}\n")
    up_env = env(SWARM_HTTP_TOKEN=TOKEN, LOG=str(tmp_path / "log"), PIDS=str(tmp_path / "pids"))
    up = subprocess.run(
        [SWARM, "up", "--detach"], cwd=tmp_path, env=up_env, capture_output=True, text=True
    )
    assert up.returncode == 0, up.stderr
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:

        def busy() -> bool:
            rows = client.get("/api/agents").json()["agents"]
            return len(rows) == 2 and all(a["current"] for a in rows)

        wait_for(busy, timeout=30)
        agents = client.get("/api/agents").json()
        assert sorted(a["name"] for a in agents["agents"]) == ["w-1", "w-2"]
        assert agents["supervisor"]["alive"] is True and len(agents["registered"]) == 2
        held = {a["agent_id"]: a["current"] for a in agents["agents"]}
        assert {a["agent_id"]: a["holding"] for a in agents["registered"]} == {
            agent_id: [current] for agent_id, current in held.items()
        }
        groups = client.get("/api/groups").json()["groups"]
        assert [(g["name"], g["state"], g["running"]) for g in groups] == [("w", "running", 2)]

        assert client.post("/api/groups/w/stop").status_code == 401
        stopped = client.post("/api/groups/w/stop", headers=auth)
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["state"] == "stopped"
        assert client.get("/api/groups").json()["groups"][0]["state"] == "stopped"
        started = client.post("/api/groups/w/start", headers=auth)
        assert started.status_code == 200 and started.json()["state"] == "running"
        missing = client.post("/api/groups/nope/restart", headers=auth)
        assert missing.status_code == 404 and "no agent group 'nope'" in missing.json()["error"]
        assert client.post("/api/groups/w/explode", headers=auth).status_code == 404
    finally:
        client.close()
        down = subprocess.run(
            [SWARM, "down", "--timeout", "30"], cwd=tmp_path, env=up_env, capture_output=True
        )
        assert down.returncode == 0, down.stderr


def test_the_api_on_postgresql(tmp_path: Path, pg_dsn: str, pg_schema: str) -> None:
    # A password in the DSN (the test server trusts local users, so any will do).
    parts = urlsplit(pg_dsn)
    user = parts.username or "postgres"
    secret = "s3cret-never-served"
    dsn = urlunsplit(parts._replace(netloc=f"{user}:{secret}@{parts.netloc.split('@')[-1]}"))
    (tmp_path / "swarm.toml").write_text(
        f'[store]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{pg_schema}"\n'
    )
    server = Served(tmp_path)
    try:
        queue = server.get("/api/queue")
        assert queue.status_code == 200 and secret not in queue.text
        assert queue.json()["store"] == without_password(dsn) != dsn
        stream = Events(server.client)
        try:
            added = server.post("/api/work", {"work_type": "pg", "description": "on postgres"})
            assert added.status_code == 201, added.text
            work_id = added.json()["item"]["work_item_id"]
            claim = swarm(tmp_path, "claim", "--next", "--json", AGENT_ID="agent_pg")
            assert claim.returncode == 0, claim.stderr
            seen = stream.take(2)
        finally:
            stream.close()
        assert [(e["event"], e["data"]["work_item_id"]) for e in seen] == [
            ("enqueued", work_id),
            ("claimed", work_id),
        ]
        assert seen[1]["data"]["agent_id"] == "agent_pg"
        listed = server.get("/api/work").json()
        assert [i["work_item_id"] for i in listed["items"]] == [work_id]
        swarm(tmp_path, "complete", work_id, AGENT_ID="agent_pg")
        resumed = Events(server.client, last_event_id=seen[0]["id"])
        try:
            again = resumed.take(2)
        finally:
            resumed.close()
        assert [e["event"] for e in again] == ["claimed", "completed"]
        # A position older than the 10 minutes the log is read back: a gap event first,
        # then what those 10 minutes hold (but the position's own row).
        event_id, ts, bound = seen[0]["id"].rpartition(".")[0].split("@")
        old = f"{event_id}@{float(ts) - 3600!r}@{float(bound) - 3600!r}.0"
        resumed = Events(server.client, last_event_id=old)
        try:
            gap, *events = resumed.take(3)
        finally:
            resumed.close()
        assert (gap["event"], gap["data"]["last_event_id"]) == ("gap", old)
        assert [(e["event"], e["data"]["work_item_id"]) for e in events] == [
            ("claimed", work_id),
            ("completed", work_id),
        ]
        assert server.post(f"/api/work/{work_id}/cancel").status_code == 409
        # Pages answered in SQL: list-work's order, filters and totals.
        for n, (priority, team) in enumerate([("low", "web"), ("high", None), ("high", "web")]):
            swarm(tmp_path, "add", f"t{n % 2}", f"item {n}", priority, *([team] if team else []))
        cli = json.loads(swarm(tmp_path, "list-work", "--json").stdout)
        ids = [i["work_item_id"] for i in cli]
        assert [i["work_item_id"] for i in server.get("/api/work").json()["items"]] == ids
        page = server.get("/api/work", params={"limit": 2, "offset": 1}).json()
        assert [i["work_item_id"] for i in page["items"]] == ids[1:3] and page["total"] == 3
        webbed = server.get("/api/work?team=web&priority=high,low").json()
        assert [(i["priority"], i["team"]) for i in webbed["items"]] == [
            ("high", "web"),
            ("low", "web"),
        ]
        done = server.get("/api/work?status=completed").json()
        assert [i["work_item_id"] for i in done["items"]] == [work_id]
        assert server.get("/api/work?all=true").json()["total"] == 4
    finally:
        server.close()


def test_the_web_layer_stays_off_the_item_commands_path(tmp_path: Path) -> None:
    assert offenders("orchestrator/web", ("orchestrator.cli",)) == []
    profile = subprocess.run(
        [SWARM, "add", "t", "quick"],
        cwd=tmp_path,
        env=env(PYTHONPROFILEIMPORTTIME="1"),
        capture_output=True,
        text=True,
    )
    assert profile.returncode == 0, profile.stderr
    imported = {line.split("|")[-1].strip() for line in profile.stderr.splitlines()}
    assert not {m for m in imported if m.split(".")[0] in ("starlette", "uvicorn", "yaml")}
    assert "orchestrator.web" not in imported and len(imported) > 50


def test_the_listing_follows_other_processes_through_a_compaction(
    served: Served, tmp_path: Path
) -> None:
    def same_as_cli(*args: str) -> None:
        cli = json.loads(swarm(tmp_path, "list-work", *args, "--json").stdout)
        query = "?all=true" if "--all" in args else ""
        api = served.get(f"/api/work{query}").json()
        assert [(i["work_item_id"], i["status"]) for i in api["items"]] == [
            (i["work_item_id"], i["status"]) for i in cli
        ]
        assert api["total"] == len(cli)

    for n, priority in enumerate(["low", "high", "medium", "critical", "high"]):
        swarm(tmp_path, "add", "t", f"item {n}", priority)
    same_as_cli()
    done = json.loads(swarm(tmp_path, "claim", "--next", "--json", AGENT_ID="agent_a").stdout)
    swarm(tmp_path, "complete", done["work_item_id"], AGENT_ID="agent_a")
    swarm(tmp_path, "claim", "--next", AGENT_ID="agent_b")
    same_as_cli()
    same_as_cli("--all")
    assert served.get("/api/queue").json()["work"] == {
        "claimed": 1,
        "completed": 1,
        "pending": 3,
    }
    assert swarm(tmp_path, "compact").returncode == 0
    swarm(tmp_path, "add", "t", "after the compaction", "critical")
    same_as_cli("--all")
    same_as_cli()


def test_the_journal_reader_reports_a_generation_removed_before_it_got_there(
    tmp_path: Path,
) -> None:
    """A reader behind by more than one compaction reads the generations kept in
    journal/; one removed meanwhile is skipped with ``gap`` set, before what follows."""
    from orchestrator.records import WorkItem
    from orchestrator.store.file import FileStore
    from orchestrator.store.file_changes import FileChanges

    store = FileStore(tmp_path / "s")
    reader = FileChanges(str(tmp_path / "s"))
    try:
        store.list_work()  # the store exists: the reader starts in its generation 1
        reader.seek_end()
        for generation in range(3):
            store.add_work(WorkItem(work_item_id=f"w{generation}", work_type="t", description=""))
            store.compact()
        (tmp_path / "s" / "journal" / "gen-000002.jsonl").unlink()
        first = reader.poll()
        assert [c.items[0]["work_item_id"] for c in first] == ["w0"] and not reader.gap
        then = reader.poll()
        assert reader.gap  # w1's generation is gone: the next one kept is read from its start
        assert [c.items[0]["work_item_id"] for c in then if c.items] == ["w2"]
    finally:
        reader.close()
        store.close()


def test_each_logged_change_is_one_event_and_heartbeats_none() -> None:
    from orchestrator.store.changes import Change
    from orchestrator.web.events import events_of

    def types(op: str, *statuses: str, agents: int = 0, gone: int = 0) -> list[str]:
        change = Change(
            pos="1.10",
            op=op,
            ts=1.0,
            items=[{"work_item_id": f"w{n}", "status": s} for n, s in enumerate(statuses)],
            agents=[{"agent_id": f"a{n}"} for n in range(agents)],
            gone=[f"g{n}" for n in range(gone)],
        )
        found = list(events_of(change))
        assert [event_id for event_id, _, _ in found] == [f"1.10.{n}" for n in range(len(found))]
        return [event_type for _, event_type, _ in found]

    assert types("add", "pending", "blocked") == ["enqueued", "enqueued"]
    assert types("claim", "claimed") == ["claimed"]
    assert types("progress", "in_progress") == ["progress"]
    assert types("progress", "blocked") == ["progress"]
    # A completion moves the children that waited for it: one event each.
    assert types("complete", "completed", "pending") == ["completed", "updated"]
    assert types("fail", "failed") == ["failed"]
    assert types("expire", "pending", "dead") == ["requeued", "dead"]
    assert types("cancel", "cancelled") == ["cancelled"]
    assert types("retry", "pending") == ["retried"]
    assert types("heartbeat", "claimed", "in_progress", agents=1) == []
    assert types("register", agents=1) == ["agent_up"]
    assert types("deregister", "pending", gone=1) == ["requeued", "agent_down"]


def test_any_loopback_address_is_served_under_its_own_name(tmp_path: Path) -> None:
    server = Served(tmp_path, "--host", "127.0.0.2")
    try:
        port = server.url.rsplit(":", 1)[1].strip("/")
        for host in (f"127.0.0.2:{port}", "LocalHost", f"LOCALHOST:{port}", "127.0.0.1"):
            assert server.get("/api/work", headers={"Host": host}).status_code == 200, host
        for host in ("evil.example", f"127.0.0.3:{port}", "127.0.0.2.evil.example"):
            rebound = server.get("/api/work", headers={"Host": host})
            assert rebound.status_code == 400, host
            assert "its own address" in rebound.json()["error"]
    finally:
        server.close()


def test_every_answer_forbids_framing_foreign_code_and_sniffing(served: Served) -> None:
    answers = [
        served.get("/"),
        served.get("/static/app.css"),
        served.get("/api/work"),
        served.get("/api/nope"),
        served.post("/api/work", {"work_type": "x", "description": "y"}, token=False),
        served.get("/api/work", headers={"Host": "evil.example"}),
    ]
    for answer in answers:
        assert answer.headers["content-security-policy"] == (
            "default-src 'self'; frame-ancestors 'none'"
        ), answer.request.url
        assert answer.headers["x-content-type-options"] == "nosniff"
    with served.client.stream("GET", "/api/events") as stream:
        assert stream.headers["x-content-type-options"] == "nosniff"


def test_the_api_takes_after_and_empty_values_as_swarm_add_does(
    served: Served, tmp_path: Path
) -> None:
    first = served.post("/api/work", {"work_type": "t", "description": "a"}).json()["item"]
    second = served.post("/api/work", {"work_type": "t", "description": "b"}).json()["item"]
    both = f"{first['work_item_id']}, {second['work_item_id']}"
    child = served.post("/api/work", {"work_type": "t", "description": "c", "after": [both]})
    assert child.status_code == 201, child.text
    assert child.json()["item"]["parents"] == [first["work_item_id"], second["work_item_id"]]
    cli_child = json.loads(swarm(tmp_path, "add", "t", "d", "--after", both, "--json").stdout)
    assert cli_child["parents"] == child.json()["item"]["parents"]
    # Empty values: the CLI's own check and message.
    empty = served.post("/api/work", {"work_type": "", "description": "x"})
    cli_empty = swarm(tmp_path, "add", "", "x")
    assert empty.status_code == 400 and cli_empty.returncode == 2
    assert f"swarm: error: {empty.json()['error']}" in cli_empty.stderr
    wrong_type = served.post("/api/work", {"work_type": 3, "description": "x"})
    assert wrong_type.json() == {"error": "work_type is required: a string"}


FAKE_SUPERVISOR = """
import os, sys, time
from pathlib import Path
from orchestrator import control, runstate

agents_dir = Path(sys.argv[1])
agents_dir.mkdir(parents=True, exist_ok=True)
state = {"pid": os.getpid(), "status": "running", "started_at": time.time(), "agents": []}
runstate.write_json(runstate.state_path(agents_dir), state)
stopping = {"ok": False, "message": "the supervisor is stopping"}
while not control.serve_pending(agents_dir, lambda request: stopping):
    time.sleep(0.02)
"""


def test_a_group_action_while_the_supervisor_stops_is_a_conflict(
    served: Served, tmp_path: Path
) -> None:
    # A supervisor that has begun to stop but not yet said so in its state file: it
    # answers the request with a refusal (what Supervisor._control replies then).
    agents_dir = tmp_path / DEFAULT_AGENTS_DIR
    fake = subprocess.Popen([sys.executable, "-c", FAKE_SUPERVISOR, str(agents_dir)])
    try:
        wait_for(lambda: (agents_dir / "supervisor.json").exists(), timeout=30)
        answer = served.post("/api/groups/w/stop")
        assert fake.wait(timeout=30) == 0  # it answered this request
    finally:
        if fake.poll() is None:
            fake.kill()
            fake.wait()
    assert answer.status_code == 409
    assert answer.json() == {"error": "the supervisor is stopping"}


SLOW_WRITER = """
import sys
import psycopg

dsn, schema = sys.argv[1], sys.argv[2]
with psycopg.connect(dsn, options=f"-c search_path={schema}") as conn:
    # A store transaction that logs its change, then takes long to commit.
    row = conn.execute(
        "INSERT INTO events (ts, op, work_item_id, status)"
        " VALUES (swarm_now(), 'add', 'work_slow', 'pending') RETURNING ts"
    ).fetchone()
    print(row[0], flush=True)
    sys.stdin.readline()
"""


def test_pg_events_of_a_long_transaction_are_not_lost_live_or_on_resume(
    tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    (tmp_path / "swarm.toml").write_text(
        f'[store]\nbackend = "postgres"\ndsn = "{pg_dsn}"\nschema = "{pg_schema}"\n'
    )
    assert swarm(tmp_path, "add", "t", "first").returncode == 0  # the schema, made
    server = Served(tmp_path)
    stream = Events(server.client)
    slow = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, pg_dsn, pg_schema],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert slow.stdout is not None and slow.stdin is not None
        began = float(slow.stdout.readline())
        # Another process's change, committed more than the 2 s horizon after the
        # slow transaction began (by the database's clock), is sent first...
        clock = psycopg.connect(pg_dsn, options=f"-c search_path={pg_schema}", autocommit=True)
        with clock as conn:
            wait_for(
                lambda: conn.execute("SELECT swarm_now()").fetchone()[0] > began + 2.5,
                timeout=30,
            )
        assert swarm(tmp_path, "add", "t", "fast").returncode == 0
        fast = stream.take(1, timeout=10)
        assert fast[0]["data"]["work_item_id"] != "work_slow"
        # ...and the slow one's, committed now with its older time, follows.
        slow.stdin.write("commit\n")
        slow.stdin.flush()
        assert slow.wait(timeout=30) == 0
        late = stream.take(1, timeout=10)
        assert late[0]["data"]["work_item_id"] == "work_slow"
    finally:
        stream.close()
        if slow.poll() is None:
            slow.kill()
            slow.wait()
        for pipe in (slow.stdin, slow.stdout):
            if pipe is not None:
                pipe.close()
    # Resuming from the event sent while it was open: it is not taken as sent.
    resumed = Events(server.client, last_event_id=fast[0]["id"])
    try:
        # At-least-once: a change from just before the stream began may come again.
        again = [resumed.take(1, timeout=10)[0]["data"]["work_item_id"]]
        if again[0] != "work_slow":
            again += [resumed.take(1, timeout=10)[0]["data"]["work_item_id"]]
        assert again[-1] == "work_slow" and fast[0]["data"]["work_item_id"] not in again
    finally:
        resumed.close()
        server.close()
