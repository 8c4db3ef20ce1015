"""Deliveries (the outbox through the API): the Slack "needs an owner" row an unowned deal
writes is listed and shown with its attempt log; filters, cursor pages newest first, bad
arguments, tenants and roles; a manual retry (404, 409 while in flight, 202 for any other
state, roles); an event's deliveries on GET /api/v1/events/{id}. The module's server runs no
dispatcher (LEADFLOW_DISPATCHER=0), so the rows stay as the tests write them; the tests at the
end run one against a local receiver."""
import http.server
import json
import sqlite3
import threading
import time
import uuid

import pytest

from conftest import Server, Tenant, fields_of, problem

DELIVERY_KEYS = {"id", "kind", "subscription_id", "event_id", "target", "payload", "status",
                 "attempts", "next_attempt_at", "last_status", "last_error", "delivered_at",
                 "created_at", "updated_at", "step"}
ATTEMPT_KEYS = {"attempt", "started_at", "duration_ms", "status_code", "error",
                "response_excerpt", "target"}
EVENT_DELIVERY_KEYS = {"id", "kind", "subscription_id", "target", "status", "attempts",
                       "last_status", "last_error", "next_attempt_at", "delivered_at"}


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
           subscription_id=None, payload='{"n": 1}', attempts=(), next_attempt_at=None):
    """Writes a delivery (and its attempts, (attempt, status_code) pairs) straight into the
    store, as the dispatcher does. Returns its id."""
    did = str(uuid.uuid4())
    with sqlite3.connect(s.db, timeout=10) as c:
        tid = c.execute("SELECT id FROM tenants WHERE slug = ?", (tenant_slug,)).fetchone()[0]
        c.execute("INSERT INTO deliveries (id, tenant_id, kind, subscription_id, event_id, target,"
                  " payload, status, attempts, last_status, next_attempt_at, created_at,"
                  " updated_at) VALUES (?, ?, ?, ?, ?, 'https://hooks.example/in', ?, ?, ?, ?, ?,"
                  " ?, ?)",
                  (did, tid, kind, subscription_id, event_id, payload, status, len(attempts),
                   attempts[-1][1] if attempts else None, next_attempt_at, created_at,
                   created_at))
        for n, code in attempts:
            c.execute("INSERT INTO delivery_attempts (id, tenant_id, delivery_id, attempt,"
                      " started_at, duration_ms, status_code, error, response_excerpt, target)"
                      " VALUES (?, ?, ?, ?, ?, 12, ?, ?, 'body', ?)",
                      (str(uuid.uuid4()), tid, did, n, created_at + n * 1000, code,
                       None if code < 400 else f"HTTP {code}", f"https://hooks.example/in/{n}"))
    return did


def row(s, did):
    with sqlite3.connect(s.db, timeout=10) as c:
        c.row_factory = sqlite3.Row
        r = c.execute("SELECT * FROM deliveries WHERE id = ?", (did,)).fetchone()
        return dict(r) if r else None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The module's own server, without a dispatcher: what the tests write stays as written."""
    s = Server(tmp_path_factory.mktemp("lf"), LEADFLOW_DISPATCHER=0).start()
    yield s
    rc = s.stop()
    assert rc == 0, "leadflow did not exit cleanly:\n" + s.read_log()[-4000:]


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
    assert slack["step"] is None
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
    assert [a["target"] for a in log] == [f"https://hooks.example/in/{n}" for n in (1, 2, 3)]
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


# ---- filters over every kind and status

def test_each_filter_and_their_combinations_select_exactly_their_rows(server):
    t = Tenant(server)
    now = int(time.time() * 1000)
    ev, sub = str(uuid.uuid4()), str(uuid.uuid4())
    made = {}  # id -> (kind, status, created_at, event, subscription)
    i = 0
    for kind in ("webhook", "slack", "moco"):
        for status in ("pending", "in_flight", "succeeded", "failed", "dead"):
            at = now - 60_000 + i * 1000
            e = ev if i % 2 == 0 else None
            sb = sub if kind == "webhook" and i % 3 == 0 else None
            made[insert(server, t.slug, at, kind=kind, status=status, event_id=e,
                        subscription_id=sb)] = (kind, status, at, e, sb)
            i += 1

    def want(pred):
        return sorted((d for d in made if pred(*made[d])), key=lambda d: (made[d][2], d),
                      reverse=True)

    for kind in ("webhook", "slack", "moco"):
        assert ids(listed(t, f"kind={kind}")) == want(lambda k, *_: k == kind)
    for status in ("pending", "in_flight", "succeeded", "failed", "dead"):
        assert ids(listed(t, f"status={status}")) == want(lambda k, st, *_: st == status)
    assert ids(listed(t, f"event={ev}")) == want(lambda k, st, at, e, sb: e == ev)
    assert ids(listed(t, f"subscription={sub}")) == want(lambda k, st, at, e, sb: sb == sub)
    since = rfc3339(now - 60_000 + 7 * 1000)
    assert ids(listed(t, f"since={since}")) == want(lambda k, st, at, *_: at >= now - 53_000)
    got = ids(listed(t, f"kind=moco&status=dead&since={since}&event={ev}"))
    assert got == want(lambda k, st, at, e, sb: k == "moco" and st == "dead"
                       and at >= now - 53_000 and e == ev)
    assert len(got) == 1
    # a filter of another tenant's subscription finds nothing here
    assert listed(Tenant(server), f"subscription={sub}") == []


# ---- POST /api/v1/deliveries/{id}/retry

def test_retry_unknown_or_foreign_is_404_and_changes_nothing(server, t):
    for bad in (str(uuid.uuid4()), "not-an-id"):
        doc = problem(t.post(f"/api/v1/deliveries/{bad}/retry"), 404)
        assert f"no delivery {bad}" in doc["detail"]
    now = int(time.time() * 1000)
    did = insert(server, t.slug, now, status="dead", attempts=[(1, 500)])
    before = row(server, did)
    other = Tenant(server)
    doc = problem(other.post(f"/api/v1/deliveries/{did}/retry"), 404)
    assert did in doc["detail"]
    assert row(server, did) == before


def test_retry_in_flight_is_409_and_changes_nothing(server, t):
    now = int(time.time() * 1000)
    did = insert(server, t.slug, now, status="in_flight", attempts=[(1, 503)],
                 next_attempt_at=now + 3_600_000)  # the claim's lease
    before = row(server, did)
    doc = problem(t.post(f"/api/v1/deliveries/{did}/retry"), 409)
    assert did in doc["detail"] and "being sent" in doc["detail"]
    assert row(server, did) == before


@pytest.mark.parametrize("status", ["dead", "failed", "succeeded", "pending"])
def test_retry_puts_it_back_in_the_queue_due_now_keeping_its_log(server, t, status):
    created = int(time.time() * 1000) - 3_600_000
    tries = [(1, 500), (2, 503)] if status != "succeeded" else [(1, 500), (2, 200)]
    did = insert(server, t.slug, created, status=status, attempts=tries)
    log_before = t.get(f"/api/v1/deliveries/{did}").json()["attempt_log"]
    asked = time.time()
    r = t.post(f"/api/v1/deliveries/{did}/retry")
    assert r.status_code == 202, r.text
    got = r.json()
    assert set(got) == DELIVERY_KEYS | {"attempt_log"}
    assert got["id"] == did and got["status"] == "pending"
    assert got["attempt_log"] == log_before  # the tries made stay on record
    due = row(server, did)["next_attempt_at"]
    assert due is not None and abs(due / 1000 - asked) < 30
    assert got["next_attempt_at"] is not None
    assert t.get(f"/api/v1/deliveries/{did}").json() == got
    assert did in ids(listed(t, "status=pending"))


def test_retry_roles(server, t):
    did = insert(server, t.slug, int(time.time() * 1000), status="dead")
    for role in ("sales", "viewer", "ingest"):
        problem(t.post(f"/api/v1/deliveries/{did}/retry", role=role), 403)
    assert row(server, did)["status"] == "dead"
    assert t.s.http.post(f"{t.s.url}/api/v1/deliveries/{did}/retry",
                         timeout=30).status_code == 401
    r = t.post(f"/api/v1/deliveries/{did}/retry", role="manager")
    assert r.status_code == 202 and r.json()["status"] == "pending", r.text
    r = t.post(f"/api/v1/deliveries/{did}/retry", role="admin")  # again: still fine
    assert r.status_code == 202, r.text


def test_retry_is_post_only(t, slack):
    r = t.get(f"/api/v1/deliveries/{slack['id']}/retry")
    assert r.status_code == 405, r.text


# ---- GET /api/v1/events/{id} lists the event's deliveries

def test_event_lists_its_deliveries_oldest_first_at_most_100(server, t):
    ev = t.send("page_view", f"{uniq('e')}@lead.example")
    assert ev["deliveries"] == []
    base = int(time.time() * 1000) - 600_000
    order = list(range(105))
    order.reverse()  # written newest first: the answer sorts, not the insertion order
    made = {n: insert(server, t.slug, base + n * 10, kind=("webhook", "slack", "moco")[n % 3],
                      status="failed", event_id=ev["id"], attempts=[(1, 502)])
            for n in order}
    other = Tenant(server)  # another tenant's row naming the same event id is not listed
    foreign = insert(server, other.slug, base - 10, event_id=ev["id"])
    r = t.get(f"/api/v1/events/{ev['id']}")
    assert r.status_code == 200, r.text
    listed_ = r.json()["deliveries"]
    assert [d["id"] for d in listed_] == [made[n] for n in range(100)]
    assert foreign not in [d["id"] for d in listed_]
    first = listed_[0]
    assert set(first) == EVENT_DELIVERY_KEYS
    assert first["kind"] == "webhook" and first["status"] == "failed" and first["attempts"] == 1
    assert first["last_status"] == 502 and first["target"] == "https://hooks.example/in"
    assert first["subscription_id"] is None and first["delivered_at"] is None
    # the other tenant sees neither the event nor its deliveries
    problem(other.get(f"/api/v1/events/{ev['id']}"), 404)


# ---- with a dispatcher: a retry sends again

class Receiver:
    """A local webhook receiver on 127.0.0.1: records every request; answers 200, or holds
    the answer while `hold` is cleared. Stops with the test."""

    def __init__(self):
        self.requests = []
        self.hold = threading.Event()
        self.hold.set()
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                           "body": body})
                outer.hold.wait(20)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return len(self.requests)

    def wait(self, n, timeout=20):
        deadline = time.time() + timeout
        while self.count() < n:
            assert time.time() < deadline, f"{self.count()} requests, waited for {n}"
            time.sleep(0.05)

    def stop(self):
        self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def live(fresh_server):
    """A server of the test's own with its dispatcher, allowed to call local receivers."""
    fresh_server.env["LEADFLOW_ALLOW_PRIVATE_TARGETS"] = "1"
    return fresh_server.start()


def webhook_delivery(t, url):
    """An automation rule sends a webhook to url on event "ping"; sends one. Returns the event
    and its delivery's id."""
    r = t.post("/api/v1/automation/rules", {
        "name": uniq("hook"), "trigger_type": "event", "trigger_config": {"event_type": "ping"},
        "action_type": "send_webhook", "action_config": {"url": url}})
    assert r.status_code == 201, r.text
    ev = t.send("ping", f"{uniq('p')}@lead.example")
    hooks = [d for d in ev["deliveries"] if d["kind"] == "webhook"]
    assert len(hooks) == 1 and hooks[0]["target"] == url, ev["deliveries"]
    return ev, hooks[0]["id"]


def wait_status(t, did, status, timeout=20):
    deadline = time.time() + timeout
    while True:
        got = t.get(f"/api/v1/deliveries/{did}").json()
        if got["status"] == status:
            return got
        assert time.time() < deadline, got
        time.sleep(0.05)


def test_retry_of_a_succeeded_delivery_sends_it_again(live, receiver):
    t = Tenant(live)
    ev, did = webhook_delivery(t, receiver.url)
    receiver.wait(1)
    first = wait_status(t, did, "succeeded")
    assert [a["status_code"] for a in first["attempt_log"]] == [200]
    assert first["attempt_log"][0]["target"] == receiver.url
    r = t.post(f"/api/v1/deliveries/{did}/retry")
    assert r.status_code == 202, r.text
    receiver.wait(2)
    again = wait_status(t, did, "succeeded")
    assert [a["status_code"] for a in again["attempt_log"]] == [200, 200]
    assert all(a["target"] == receiver.url for a in again["attempt_log"])
    one, two = receiver.requests
    assert one["body"] == two["body"]  # the same message, sent again
    if "webhook-id" in {k.lower() for k in one["headers"]}:
        hid = {k.lower(): v for k, v in one["headers"].items()}["webhook-id"]
        assert {k.lower(): v for k, v in two["headers"].items()}["webhook-id"] == hid
    # the event lists it as delivered
    listed_ = t.get(f"/api/v1/events/{ev['id']}").json()["deliveries"]
    assert [(d["id"], d["status"], d["last_status"]) for d in listed_] == [(did, "succeeded", 200)]
    assert listed_[0]["delivered_at"] is not None


def test_retry_while_the_try_is_under_way_is_409(live, receiver):
    t = Tenant(live)
    receiver.hold.clear()  # the receiver keeps the first try waiting
    ev, did = webhook_delivery(t, receiver.url)
    receiver.wait(1)
    assert wait_status(t, did, "in_flight")["status"] == "in_flight"
    doc = problem(t.post(f"/api/v1/deliveries/{did}/retry"), 409)
    assert "being sent" in doc["detail"]
    receiver.hold.set()
    done = wait_status(t, did, "succeeded")
    assert len(done["attempt_log"]) == 1
    time.sleep(1)
    assert receiver.count() == 1  # the refused retry sent nothing
