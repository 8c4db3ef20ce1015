"""Deliveries (the outbox, read side): the Slack "needs an owner" row an unowned deal writes is
listed and shown with its attempt log; filters, cursor pages newest first, bad arguments,
tenants and roles."""
import sqlite3
import time
import uuid

import pytest

from conftest import Tenant, fields_of, problem

DELIVERY_KEYS = {"id", "kind", "subscription_id", "event_id", "target", "payload", "status",
                 "attempts", "next_attempt_at", "last_status", "last_error", "delivered_at",
                 "created_at", "updated_at"}
ATTEMPT_KEYS = {"attempt", "started_at", "duration_ms", "status_code", "error",
                "response_excerpt"}


def uniq(prefix="d"):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def unowned_deal(t):
    """A deal nobody is given (the strategy is manual), so the engine writes a pending slack
    delivery. Returns the deal."""
    r = t.post("/api/v1/leads", {"email": f"{uniq('l')}@lead.example", "first_name": uniq("n")})
    assert r.status_code == 201, r.text
    r = t.post("/api/v1/deals", {"lead_id": r.json()["id"], "pipeline": "b2b"})
    assert r.status_code == 201, r.text
    assert r.json()["assigned_to"] is None
    return r.json()


def listed(t, query="", **kw):
    r = t.get(f"/api/v1/deliveries?limit=500&{query}", **kw)
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    return r.json()["items"]


def ids(items):
    return [d["id"] for d in items]


def insert(s, tenant_slug, created_at, kind="webhook", status="pending", event_id=None,
           subscription_id=None, payload='{"n": 1}', attempts=()):
    """Writes a delivery (and its attempts, (attempt, status_code) pairs) straight into the
    store, as the dispatcher will. Returns its id."""
    did = str(uuid.uuid4())
    with sqlite3.connect(s.db, timeout=10) as c:
        tid = c.execute("SELECT id FROM tenants WHERE slug = ?", (tenant_slug,)).fetchone()[0]
        c.execute("INSERT INTO deliveries (id, tenant_id, kind, subscription_id, event_id, target,"
                  " payload, status, attempts, last_status, created_at, updated_at)"
                  " VALUES (?, ?, ?, ?, ?, 'https://hooks.example/in', ?, ?, ?, ?, ?, ?)",
                  (did, tid, kind, subscription_id, event_id, payload, status, len(attempts),
                   attempts[-1][1] if attempts else None, created_at, created_at))
        for n, code in attempts:
            c.execute("INSERT INTO delivery_attempts (id, tenant_id, delivery_id, attempt,"
                      " started_at, duration_ms, status_code, error, response_excerpt)"
                      " VALUES (?, ?, ?, ?, ?, 12, ?, ?, 'body')",
                      (str(uuid.uuid4()), tid, did, n, created_at + n * 1000, code,
                       None if code < 400 else f"HTTP {code}"))
    return did


@pytest.fixture(scope="module")
def t(server):
    t = Tenant(server)
    r = t.put("/api/v1/settings/routing", {"assignment_strategy": "manual"})
    assert r.status_code == 200, r.text
    return t


@pytest.fixture(scope="module")
def slack(t):
    """The slack delivery written for an unowned deal, as the list shows it."""
    deal = unowned_deal(t)
    found = [d for d in listed(t, "kind=slack") if deal["name"] in d["payload"]["text"]]
    assert len(found) == 1, found
    return found[0]


def test_unowned_deal_writes_a_listed_slack_delivery(t, slack):
    assert set(slack) == DELIVERY_KEYS
    assert slack["kind"] == "slack" and slack["status"] == "pending" and slack["attempts"] == 0
    assert "needs an owner" in slack["payload"]["text"]
    assert slack["target"] == "default" and slack["event_id"] is None
    assert slack["subscription_id"] is None and slack["last_status"] is None
    assert slack["last_error"] is None and slack["delivered_at"] is None
    for k in ("created_at", "updated_at", "next_attempt_at"):
        assert slack[k].endswith("Z") and "T" in slack[k], slack
    assert ids(listed(t, "kind=slack"))[0] == slack["id"]  # the newest


def test_filters(t, slack):
    at = slack["created_at"]
    assert slack["id"] in ids(listed(t, "kind=slack&status=pending"))
    assert slack["id"] in ids(listed(t, "since=" + at.replace("+", "%2B")))
    assert slack["id"] not in ids(listed(t, "kind=webhook"))
    assert slack["id"] not in ids(listed(t, "kind=moco"))
    assert slack["id"] not in ids(listed(t, "status=dead"))
    assert slack["id"] not in ids(listed(t, "since=2999-01-01T00:00:00Z"))
    assert listed(t, f"event={uuid.uuid4()}") == []
    assert listed(t, f"subscription={uuid.uuid4()}") == []


def test_event_and_subscription_filters(server, t):
    now = int(time.time() * 1000)
    ev, sub = str(uuid.uuid4()), str(uuid.uuid4())
    a = insert(server, t.slug, now, event_id=ev, subscription_id=sub)
    b = insert(server, t.slug, now, event_id=ev, kind="moco", status="failed")
    insert(server, t.slug, now, subscription_id=sub, status="succeeded")
    assert sorted(ids(listed(t, f"event={ev}"))) == sorted([a, b])
    assert ids(listed(t, f"event={ev}&subscription={sub}")) == [a]
    assert ids(listed(t, f"event={ev}&kind=moco&status=failed")) == [b]


def test_bad_arguments_are_400_naming_them(t):
    for query, field in [("kind=email", "kind"), ("kind=", "kind"), ("status=sent", "status"),
                         ("since=yesterday", "since"), ("event=nope", "event"),
                         ("subscription=42", "subscription"), ("cursor=garbage", "cursor"),
                         (f"cursor={uuid.uuid4()}", "cursor"), ("cursor=12.nope", "cursor"),
                         ("limit=0", "limit"), ("limit=501", "limit")]:
        doc = problem(t.get(f"/api/v1/deliveries?{query}"), 400)
        assert fields_of(doc) == {field}, (query, doc)
    doc = problem(t.get("/api/v1/deliveries?kind=x&status=y&since=z&cursor=c"), 400)
    assert fields_of(doc) == {"kind", "status", "since", "cursor"}


def rfc3339(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def test_pages_newest_first_with_a_cursor(server):
    t = Tenant(server)
    base = int(time.time() * 1000) - 60_000
    offsets = (0, 10, 10, 20, 30)  # two share a created_at: the id breaks the tie
    made = {insert(server, t.slug, base + ms): base + ms for ms in offsets}
    want = sorted(made, key=lambda i: (made[i], i), reverse=True)
    got, cursor, pages = [], None, 0
    while True:
        r = t.get("/api/v1/deliveries?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status_code == 200, r.text
        page = r.json()
        got += ids(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == f"{made[page['items'][-1]['id']]}.{page['items'][-1]['id']}"
    assert got == want and pages == 3
    # a filter holds across pages: since keeps all but the oldest
    since = rfc3339(base + 10)
    r = t.get(f"/api/v1/deliveries?limit=1&since={since}")
    assert r.status_code == 200 and ids(r.json()["items"]) == want[:1], r.text
    r = t.get(f"/api/v1/deliveries?cursor={r.json()['next_cursor']}&since={since}")
    assert r.status_code == 200, r.text
    assert ids(r.json()["items"]) == want[1:4] and r.json()["next_cursor"] is None


def test_get_includes_the_attempt_log(t, slack):
    r = t.get(f"/api/v1/deliveries/{slack['id']}")
    assert r.status_code == 200, r.text
    one = r.json()
    assert one.pop("attempt_log") == []
    assert one == slack


def test_attempt_log_is_oldest_first(server, t):
    did = insert(server, t.slug, int(time.time() * 1000), status="failed",
                 attempts=[(3, 503), (1, 500), (2, 200)])
    one = t.get(f"/api/v1/deliveries/{did}").json()
    assert one["attempts"] == 3 and one["last_status"] == 200 and one["payload"] == {"n": 1}
    log = one["attempt_log"]
    assert [a["attempt"] for a in log] == [1, 2, 3]
    assert all(set(a) == ATTEMPT_KEYS for a in log)
    assert [a["status_code"] for a in log] == [500, 200, 503]
    assert log[0]["error"] == "HTTP 500" and log[1]["error"] is None
    assert log[0]["duration_ms"] == 12 and log[0]["response_excerpt"] == "body"
    assert log[0]["started_at"] < log[1]["started_at"] < log[2]["started_at"]


def test_unknown_id_is_404(t):
    for bad in (str(uuid.uuid4()), "not-an-id"):
        doc = problem(t.get(f"/api/v1/deliveries/{bad}"), 404)
        assert f"no delivery {bad}" in doc["detail"]


def test_another_tenant_cannot_see_it(server, t, slack):
    other = Tenant(server)
    doc = problem(other.get(f"/api/v1/deliveries/{slack['id']}"), 404)
    assert slack["id"] in doc["detail"]
    assert slack["id"] not in ids(listed(other))
    assert slack["id"] not in ids(listed(other, "kind=slack"))
    assert server.get(f"/api/v1/deliveries/{slack['id']}").status_code == 404  # default tenant


def test_read_roles(t, slack):
    for role in ("viewer", "sales", "manager"):
        assert slack["id"] in ids(listed(t, "kind=slack", role=role))
        assert t.get(f"/api/v1/deliveries/{slack['id']}", role=role).status_code == 200
    problem(t.get("/api/v1/deliveries", role="ingest"), 403)
    problem(t.get(f"/api/v1/deliveries/{slack['id']}", role="ingest"), 403)
    assert t.s.http.get(t.s.url + "/api/v1/deliveries", timeout=30).status_code == 401
