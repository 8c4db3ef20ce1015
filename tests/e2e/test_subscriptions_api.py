"""Webhook subscriptions API: create (the secret shown once), list, get with delivery counts,
change, disable and enable, delete (its unsent deliveries die), secret rotation, recover,
validation, roles, tenants, and the refusal of targets that are private or the service itself.

The module's server runs with LEADFLOW_ALLOW_PRIVATE_TARGETS off (as in production; the other
suites' servers turn it on for their local receivers) and without the dispatcher, so deliveries
written straight into the store stay as written; sending them is tested elsewhere."""
import datetime
import sqlite3
import time
import uuid

import pytest

from conftest import Server, Tenant, fields_of, problem, uniq

HOOK = "https://hooks.example.com/in"  # public-looking; offline it does not resolve (accepted)
SUB_KEYS = {"id", "url", "description", "event_types", "is_active", "disabled_reason",
            "failing_since", "secret_rotated_until", "created_at", "updated_at"}
STATUSES = ("pending", "in_flight", "succeeded", "failed", "dead")


@pytest.fixture(scope="module")
def s(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("subs"), LEADFLOW_DISPATCHER="0",
                 LEADFLOW_ALLOW_PRIVATE_TARGETS="0").start()
    yield srv
    rc = srv.stop()
    assert rc == 0, "leadflow did not exit cleanly:\n" + srv.read_log()[-4000:]


@pytest.fixture(scope="module")
def t(s):
    return Tenant(s, keep_rules=True)


def rfc3339(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def create(t, **body):
    body.setdefault("url", HOOK)
    r = t.post("/api/v1/subscriptions", body)
    assert r.status_code == 201, r.text
    return r.json()


def db(s):
    return sqlite3.connect(s.db, timeout=10)


def tenant_id(s, slug):
    with db(s) as c:
        return c.execute("SELECT id FROM tenants WHERE slug = ?", (slug,)).fetchone()[0]


def insert_delivery(s, slug, sub_id, status, created_at, next_attempt_at=None):
    """Writes a webhook delivery of the subscription straight into the store."""
    did = str(uuid.uuid4())
    with db(s) as c:
        c.execute("INSERT INTO deliveries (id, tenant_id, kind, subscription_id, target, payload,"
                  " status, attempts, next_attempt_at, created_at, updated_at)"
                  " VALUES (?, ?, 'webhook', ?, ?, '{}', ?, 1, ?, ?, ?)",
                  (did, tenant_id(s, slug), sub_id, HOOK, status, next_attempt_at, created_at,
                   created_at))
    return did


def row(s, sql, *args):
    with db(s) as c:
        return c.execute(sql, args).fetchone()


def no_secret(doc):
    assert "secret" not in doc and "previous_secret" not in doc, doc


# ---- create, read


def test_create_shows_the_secret_once(t):
    before = time.time()
    sub = create(t, event_types=["lead.*", "deal.won", "job.created"], description="CRM sync")
    assert set(sub) == SUB_KEYS | {"secret"}
    assert sub["secret"].startswith("whsec_") and len(sub["secret"]) > 40
    assert sub["url"] == HOOK and sub["description"] == "CRM sync"
    assert sub["event_types"] == ["lead.*", "deal.won", "job.created"]
    assert sub["is_active"] is True and sub["disabled_reason"] is None
    assert sub["failing_since"] is None and sub["secret_rotated_until"] is None
    assert before - 2 <= parse(sub["created_at"]) <= time.time() + 2
    got = t.get(f"/api/v1/subscriptions/{sub['id']}")
    assert got.status_code == 200, got.text
    no_secret(got.json())
    assert set(got.json()) == SUB_KEYS | {"delivery_counts"}
    assert got.json()["delivery_counts"] == {k: 0 for k in STATUSES}
    listed = t.get("/api/v1/subscriptions?limit=500").json()["items"]
    assert [x for x in listed if x["id"] == sub["id"]]
    for item in listed:
        no_secret(item)
        assert set(item) == SUB_KEYS


def test_defaults(t):
    sub = create(t)
    assert sub["event_types"] == ["*"] and sub["description"] is None
    sub = create(t, event_types=["*"], description=None)
    assert sub["event_types"] == ["*"]


def test_list_pages_newest_first_and_filters_active(s):
    t = Tenant(s, keep_rules=True)
    made = [create(t, description=f"n{i}")["id"] for i in range(3)]
    r = t.get("/api/v1/subscriptions?limit=2")
    assert r.status_code == 200, r.text
    page = r.json()
    assert [x["id"] for x in page["items"]] == made[::-1][:2]
    assert page["next_cursor"]
    nxt = t.get(f"/api/v1/subscriptions?limit=2&cursor={page['next_cursor']}").json()
    assert [x["id"] for x in nxt["items"]] == [made[0]] and nxt["next_cursor"] is None
    assert t.patch(f"/api/v1/subscriptions/{made[1]}", {"is_active": False}).status_code == 200
    off = t.get("/api/v1/subscriptions?active=false").json()["items"]
    on = t.get("/api/v1/subscriptions?active=true").json()["items"]
    assert [x["id"] for x in off] == [made[1]]
    assert [x["id"] for x in on] == [made[2], made[0]]
    for bad in ("active=yes", "limit=0", "cursor=nope"):
        doc = problem(t.get(f"/api/v1/subscriptions?{bad}"), 400)
        assert fields_of(doc) == {bad.split("=")[0]}


def test_get_counts_deliveries_by_status(s, t):
    sub = create(t)
    now = int(time.time() * 1000)
    for status, n in (("pending", 2), ("succeeded", 3), ("failed", 1), ("dead", 1)):
        for _ in range(n):
            insert_delivery(s, t.slug, sub["id"], status, now)
    got = t.get(f"/api/v1/subscriptions/{sub['id']}").json()
    assert got["delivery_counts"] == {"pending": 2, "in_flight": 0, "succeeded": 3, "failed": 1,
                                      "dead": 1}


def test_unknown_subscription_is_404(t):
    missing = str(uuid.uuid4())
    for r in (t.get(f"/api/v1/subscriptions/{missing}"),
              t.patch(f"/api/v1/subscriptions/{missing}", {"description": "x"}),
              t.delete(f"/api/v1/subscriptions/{missing}"),
              t.post(f"/api/v1/subscriptions/{missing}/rotate-secret"),
              t.post(f"/api/v1/subscriptions/{missing}/enable"),
              t.post(f"/api/v1/subscriptions/{missing}/recover",
                     {"since": "2026-01-01T00:00:00Z"})):
        assert missing in problem(r, 404)["detail"]


# ---- validation


@pytest.mark.parametrize("body,field", [
    ({}, "url"),
    ({"url": None}, "url"),
    ({"url": 42}, "url"),
    ({"url": ""}, "url"),
    ({"url": "ftp://example.com/in"}, "url"),
    ({"url": "example.com/in"}, "url"),
    ({"url": "https://user:pw@example.com/in"}, "url"),
    ({"url": "https://example.com/" + "a" * 2040}, "url"),
    ({"url": HOOK, "event_types": "lead.*"}, "event_types"),
    ({"url": HOOK, "event_types": []}, "event_types"),
    ({"url": HOOK, "event_types": None}, "event_types"),
    ({"url": HOOK, "event_types": [f"e{i}" for i in range(51)]}, "event_types"),
    ({"url": HOOK, "event_types": ["lead.*", "lead.**"]}, "event_types[1]"),
    ({"url": HOOK, "event_types": ["*.*"]}, "event_types[0]"),
    ({"url": HOOK, "event_types": [".*"]}, "event_types[0]"),
    ({"url": HOOK, "event_types": ["le ad"]}, "event_types[0]"),
    ({"url": HOOK, "event_types": ["lead*"]}, "event_types[0]"),
    ({"url": HOOK, "event_types": [""]}, "event_types[0]"),
    ({"url": HOOK, "event_types": [7]}, "event_types[0]"),
    ({"url": HOOK, "event_types": ["x" * 101]}, "event_types[0]"),
    ({"url": HOOK, "description": "d" * 501}, "description"),
    ({"url": HOOK, "description": 5}, "description"),
    ({"url": HOOK, "secret": "whsec_mine"}, "secret"),
    ({"url": HOOK, "is_active": False}, "is_active"),
    ({"url": HOOK, "evnt_types": ["*"]}, "evnt_types"),
])
def test_create_refuses_bad_bodies(t, body, field):
    before = len(t.get("/api/v1/subscriptions?limit=500").json()["items"])
    doc = problem(t.post("/api/v1/subscriptions", body), 400)
    assert field in fields_of(doc), doc
    assert len(t.get("/api/v1/subscriptions?limit=500").json()["items"]) == before


def test_limits_are_inclusive(t):
    sub = create(t, url="https://example.com/" + "a" * (2048 - 20),
                 event_types=[f"type.{i}" for i in range(49)] + ["lead.*"],
                 description="é" * 500)
    assert len(sub["url"]) == 2048 and len(sub["event_types"]) == 50
    assert sub["description"] == "é" * 500


def test_messages_name_the_reason(t):
    doc = problem(t.post("/api/v1/subscriptions", {"url": "ftp://example.com/in"}), 400)
    assert doc["detail"] == "url must be http or https"
    r = t.post("/api/v1/subscriptions", {"url": "http://10.1.2.3/"})
    assert "LEADFLOW_ALLOW_PRIVATE_TARGETS is off" in problem(r, 400)["detail"]
    r = t.post("/api/v1/subscriptions", "not an object")
    problem(r, 400)
    r = t.s.http.post(t.s.url + "/api/v1/subscriptions", data="url=x",
                      headers={**t.s.auth("admin", t.slug),
                               "Content-Type": "application/x-www-form-urlencoded"})
    problem(r, 415)


# ---- change, disable, enable


def test_patch_changes_members(t):
    sub = create(t, event_types=["lead.*"], description="old")
    time.sleep(0.01)
    r = t.patch(f"/api/v1/subscriptions/{sub['id']}",
                {"url": "https://other.example.com/hook", "event_types": ["deal.*", "*"],
                 "description": None})
    assert r.status_code == 200, r.text
    got = r.json()
    no_secret(got)
    assert got["url"] == "https://other.example.com/hook"
    assert got["event_types"] == ["deal.*", "*"] and got["description"] is None
    assert got["updated_at"] > sub["updated_at"] and got["created_at"] == sub["created_at"]
    assert "delivery_counts" in got
    # an empty change changes nothing
    r = t.patch(f"/api/v1/subscriptions/{sub['id']}", {})
    assert r.status_code == 200 and r.json()["url"] == got["url"]


def test_patch_url_moves_unsent_deliveries(s, t):
    sub = create(t)
    now = int(time.time() * 1000)
    pending = insert_delivery(s, t.slug, sub["id"], "pending", now)
    done = insert_delivery(s, t.slug, sub["id"], "succeeded", now)
    r = t.patch(f"/api/v1/subscriptions/{sub['id']}", {"url": "https://moved.example.com/in"})
    assert r.status_code == 200, r.text
    assert t.get(f"/api/v1/deliveries/{pending}").json()["target"] == "https://moved.example.com/in"
    assert t.get(f"/api/v1/deliveries/{done}").json()["target"] == HOOK


@pytest.mark.parametrize("body,field", [
    ({"is_active": "no"}, "is_active"),
    ({"url": None}, "url"),
    ({"url": "gopher://example.com/"}, "url"),
    ({"event_types": ["bad type"]}, "event_types[0]"),
    ({"secret": "x"}, "secret"),
    ({"id": str(uuid.uuid4())}, "id"),
])
def test_patch_refuses_bad_bodies(t, body, field):
    sub = create(t, description="keep")
    doc = problem(t.patch(f"/api/v1/subscriptions/{sub['id']}", body), 400)
    assert field in fields_of(doc)
    got = t.get(f"/api/v1/subscriptions/{sub['id']}").json()
    assert got["description"] == "keep" and got["url"] == HOOK and got["is_active"] is True


def test_disable_and_enable(s, t):
    sub = create(t)
    r = t.patch(f"/api/v1/subscriptions/{sub['id']}", {"is_active": False})
    assert r.status_code == 200, r.text
    assert r.json()["is_active"] is False and r.json()["disabled_reason"] == "disabled by admin"
    events = t.get("/api/v1/events", params={"event_type": "subscription.disabled",
                                             "limit": 500}).json()["items"]
    mine = [e for e in events if e["metadata"]["subscription_id"] == sub["id"]]
    assert len(mine) == 1 and mine[0]["metadata"]["reason"] == "disabled by admin", events
    # disabling what is disabled changes nothing (and emits nothing)
    r = t.patch(f"/api/v1/subscriptions/{sub['id']}", {"is_active": False})
    assert r.status_code == 200 and r.json()["disabled_reason"] == "disabled by admin"
    events = t.get("/api/v1/events", params={"event_type": "subscription.disabled",
                                             "limit": 500}).json()["items"]
    assert len([e for e in events if e["metadata"]["subscription_id"] == sub["id"]]) == 1
    with db(s) as c:  # as the dispatcher records a failing target
        c.execute("UPDATE subscriptions SET failing_since = ? WHERE id = ?",
                  (int(time.time() * 1000) - 3600_000, sub["id"]))
    assert t.get(f"/api/v1/subscriptions/{sub['id']}").json()["failing_since"]
    r = t.post(f"/api/v1/subscriptions/{sub['id']}/enable")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["is_active"] is True and got["disabled_reason"] is None
    assert got["failing_since"] is None
    # and through PATCH
    t.patch(f"/api/v1/subscriptions/{sub['id']}", {"is_active": False})
    r = t.patch(f"/api/v1/subscriptions/{sub['id']}", {"is_active": True})
    assert r.json()["is_active"] is True and r.json()["disabled_reason"] is None


def test_disabled_reason_names_the_token_subject(s, t):
    sub = create(t)
    tok = s.cli("token", "--tenant", t.slug, "--role", "admin", "--sub", "ops@example.com")
    r = s.http.patch(f"{s.url}/api/v1/subscriptions/{sub['id']}", json={"is_active": False},
                     headers={"Authorization": "Bearer " + tok.stdout.strip()})
    assert r.status_code == 200, r.text
    assert r.json()["disabled_reason"] == "disabled by ops@example.com"


# ---- rotation


def test_rotate_secret(s, t):
    sub = create(t)
    first = sub["secret"]
    before = time.time()
    r = t.post(f"/api/v1/subscriptions/{sub['id']}/rotate-secret")
    assert r.status_code == 200, r.text
    rot = r.json()
    assert set(rot) == {"id", "secret", "previous_secret_expires_at"}
    assert rot["secret"].startswith("whsec_") and rot["secret"] != first
    expires = parse(rot["previous_secret_expires_at"])
    assert before + 86400 - 2 <= expires <= time.time() + 86400 + 2
    got = t.get(f"/api/v1/subscriptions/{sub['id']}").json()
    no_secret(got)
    assert got["secret_rotated_until"] == rot["previous_secret_expires_at"]
    stored = row(s, "SELECT secret, previous_secret FROM subscriptions WHERE id = ?", sub["id"])
    assert stored == (rot["secret"], first)
    # a second rotation within the overlap keeps the then-current secret as the previous one
    second = t.post(f"/api/v1/subscriptions/{sub['id']}/rotate-secret").json()
    stored = row(s, "SELECT secret, previous_secret FROM subscriptions WHERE id = ?", sub["id"])
    assert stored == (second["secret"], rot["secret"])
    assert parse(second["previous_secret_expires_at"]) >= expires


def test_rotation_overlap_shows_only_while_it_lasts(s, t):
    sub = create(t)
    t.post(f"/api/v1/subscriptions/{sub['id']}/rotate-secret")
    with db(s) as c:
        c.execute("UPDATE subscriptions SET previous_secret_until = ? WHERE id = ?",
                  (int(time.time() * 1000) - 1000, sub["id"]))
    assert t.get(f"/api/v1/subscriptions/{sub['id']}").json()["secret_rotated_until"] is None


# ---- delete


def test_delete_kills_unsent_deliveries(s, t):
    sub = create(t)
    now = int(time.time() * 1000)
    ids = {st: insert_delivery(s, t.slug, sub["id"], st, now, now + 60_000 if st != "succeeded"
                               and st != "dead" else None)
           for st in ("pending", "failed", "succeeded", "dead")}
    r = t.delete(f"/api/v1/subscriptions/{sub['id']}")
    assert r.status_code == 204, r.text
    assert problem(t.get(f"/api/v1/subscriptions/{sub['id']}"), 404)
    for st in ("pending", "failed"):
        d = t.get(f"/api/v1/deliveries/{ids[st]}").json()
        assert d["status"] == "dead" and d["last_error"] == "subscription deleted", d
        assert d["next_attempt_at"] is None
    assert t.get(f"/api/v1/deliveries/{ids['succeeded']}").json()["status"] == "succeeded"
    assert t.get(f"/api/v1/deliveries/{ids['dead']}").json()["last_error"] is None
    listed = t.get(f"/api/v1/deliveries?subscription={sub['id']}&limit=500").json()["items"]
    assert len(listed) == 4
    problem(t.delete(f"/api/v1/subscriptions/{sub['id']}"), 404)


# ---- recover


def test_recover_requeues_failed_and_dead_in_the_window(s, t):
    sub = create(t)
    now = int(time.time() * 1000)
    hour = 3600_000
    old_dead = insert_delivery(s, t.slug, sub["id"], "dead", now - 5 * hour)
    in_window = [insert_delivery(s, t.slug, sub["id"], "dead", now - 2 * hour),
                 insert_delivery(s, t.slug, sub["id"], "failed", now - 2 * hour, now + hour),
                 insert_delivery(s, t.slug, sub["id"], "dead", now - hour)]
    kept = [insert_delivery(s, t.slug, sub["id"], "succeeded", now - 2 * hour),
            insert_delivery(s, t.slug, sub["id"], "pending", now - 2 * hour, now + hour)]
    other = create(t)
    foreign = insert_delivery(s, t.slug, other["id"], "dead", now - 2 * hour)
    r = t.post(f"/api/v1/subscriptions/{sub['id']}/recover",
               {"since": rfc3339(now - 3 * hour), "until": rfc3339(now - hour + 1)})
    assert r.status_code == 202, r.text
    assert r.json()["requeued"] == 3 and r.json()["id"] == sub["id"]
    for did in in_window:
        d = t.get(f"/api/v1/deliveries/{did}").json()
        assert d["status"] == "pending" and d["next_attempt_at"] is not None, d
    assert t.get(f"/api/v1/deliveries/{old_dead}").json()["status"] == "dead"
    assert t.get(f"/api/v1/deliveries/{foreign}").json()["status"] == "dead"
    assert t.get(f"/api/v1/deliveries/{kept[0]}").json()["status"] == "succeeded"
    # until defaults to now; nothing failed is left in the window
    r = t.post(f"/api/v1/subscriptions/{sub['id']}/recover", {"since": rfc3339(now - 6 * hour)})
    assert r.status_code == 202 and r.json()["requeued"] == 1  # the old dead one
    assert abs(parse(r.json()["until"]) - time.time()) < 5


def test_recover_many_in_batches(s, t):
    sub = create(t)
    now = int(time.time() * 1000)
    tid = tenant_id(s, t.slug)
    with db(s) as c:
        c.executemany("INSERT INTO deliveries (id, tenant_id, kind, subscription_id, target,"
                      " payload, status, attempts, created_at, updated_at)"
                      " VALUES (?, ?, 'webhook', ?, ?, '{}', 'dead', 8, ?, ?)",
                      [(str(uuid.uuid4()), tid, sub["id"], HOOK, now - 1000 - i % 7,
                        now - 1000) for i in range(1203)])
    r = t.post(f"/api/v1/subscriptions/{sub['id']}/recover", {"since": rfc3339(now - 60_000)})
    assert r.status_code == 202, r.text
    assert r.json()["requeued"] == 1203
    counts = t.get(f"/api/v1/subscriptions/{sub['id']}").json()["delivery_counts"]
    assert counts["pending"] == 1203 and counts["dead"] == 0


def test_recover_refuses_a_disabled_subscription(s, t):
    sub = create(t)
    now = int(time.time() * 1000)
    dead = insert_delivery(s, t.slug, sub["id"], "dead", now - 1000)
    t.patch(f"/api/v1/subscriptions/{sub['id']}", {"is_active": False})
    r = t.post(f"/api/v1/subscriptions/{sub['id']}/recover", {"since": rfc3339(now - 60_000)})
    assert "enable it first" in problem(r, 409)["detail"]
    assert t.get(f"/api/v1/deliveries/{dead}").json()["status"] == "dead"
    t.post(f"/api/v1/subscriptions/{sub['id']}/enable")
    r = t.post(f"/api/v1/subscriptions/{sub['id']}/recover", {"since": rfc3339(now - 60_000)})
    assert r.status_code == 202 and r.json()["requeued"] == 1


@pytest.mark.parametrize("body,field", [
    ({}, "since"),
    ({"since": None}, "since"),
    ({"since": "yesterday"}, "since"),
    ({"since": 1700000000}, "since"),
    ({"since": "2026-01-01"}, "since"),
    ({"since": "2026-01-01T00:00:00Z", "until": "soon"}, "until"),
    ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
    ({"since": "2999-01-01T00:00:00Z"}, "since"),
    ({"since": "2026-01-01T00:00:00Z", "status": "dead"}, "status"),
])
def test_recover_validation(t, body, field):
    sub = create(t)
    doc = problem(t.post(f"/api/v1/subscriptions/{sub['id']}/recover", body), 400)
    assert field in fields_of(doc), doc


# ---- roles and tenants


@pytest.mark.parametrize("role", ["manager", "sales", "viewer", "ingest"])
def test_only_admins(s, t, role):
    sub = create(t)
    sid = sub["id"]
    calls = [("GET", "/api/v1/subscriptions", None), ("POST", "/api/v1/subscriptions",
                                                       {"url": HOOK}),
             ("GET", f"/api/v1/subscriptions/{sid}", None),
             ("PATCH", f"/api/v1/subscriptions/{sid}", {"description": "x"}),
             ("DELETE", f"/api/v1/subscriptions/{sid}", None),
             ("POST", f"/api/v1/subscriptions/{sid}/rotate-secret", None),
             ("POST", f"/api/v1/subscriptions/{sid}/enable", None),
             ("POST", f"/api/v1/subscriptions/{sid}/recover", {"since": "2026-01-01T00:00:00Z"})]
    for method, path, body in calls:
        r = s.http.request(method, s.url + path, json=body, headers=s.auth(role, t.slug),
                           timeout=30)
        problem(r, 403)
    got = t.get(f"/api/v1/subscriptions/{sid}").json()
    assert got["description"] is None and got["is_active"] is True
    no_token = s.http.get(s.url + "/api/v1/subscriptions", timeout=30)
    problem(no_token, 401)


def test_tenants_are_isolated(s, t):
    other = Tenant(s, keep_rules=True)
    sub = create(t)
    sid = sub["id"]
    assert sid not in [x["id"] for x in other.get("/api/v1/subscriptions").json()["items"]]
    problem(other.get(f"/api/v1/subscriptions/{sid}"), 404)
    problem(other.patch(f"/api/v1/subscriptions/{sid}", {"url": "https://evil.example.com/"}), 404)
    problem(other.post(f"/api/v1/subscriptions/{sid}/rotate-secret"), 404)
    problem(other.post(f"/api/v1/subscriptions/{sid}/enable"), 404)
    problem(other.post(f"/api/v1/subscriptions/{sid}/recover", {"since": "2026-01-01T00:00:00Z"}),
            404)
    problem(other.delete(f"/api/v1/subscriptions/{sid}"), 404)
    got = t.get(f"/api/v1/subscriptions/{sid}").json()
    assert got["url"] == HOOK
    assert row(s, "SELECT secret FROM subscriptions WHERE id = ?", sid)[0] == sub["secret"]
    # the other tenant's own subscription is its own
    mine = create(other)
    assert [x["id"] for x in other.get("/api/v1/subscriptions").json()["items"]] == [mine["id"]]


# ---- targets

PRIVATE = ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.1.2.3/",
           "http://[::1]/", "http://192.168.1.20:8080/x", "http://169.254.169.254/latest",
           "http://[fe80::1]/", "http://0.0.0.0/", "http://hooks.localhost/",
           "http://[::ffff:127.0.0.1]/", "http://2130706433/"]


@pytest.mark.parametrize("url", PRIVATE)
def test_private_targets_are_refused_by_default(t, url):
    doc = problem(t.post("/api/v1/subscriptions", {"url": url}), 400)
    assert fields_of(doc) == {"url"}
    assert "private or loopback" in doc["detail"], doc
    assert "LEADFLOW_ALLOW_PRIVATE_TARGETS" in doc["detail"]
    sub = create(t)
    doc = problem(t.patch(f"/api/v1/subscriptions/{sub['id']}", {"url": url}), 400)
    assert "private or loopback" in doc["detail"]


def test_public_targets_are_accepted_by_default(t):
    for url in ("https://example.com/hook", "http://93.184.216.34/in",
                "https://[2606:4700:4700::1111]:8443/in"):
        assert create(t, url=url)["url"] == url


def test_the_service_itself_is_refused(s, t):
    for url in (f"http://127.0.0.1:{s.port}/api/v1/events", f"http://localhost:{s.port}/"):
        doc = problem(t.post("/api/v1/subscriptions", {"url": url}), 400)
        assert doc["detail"] == "url points at leadflow itself", doc


def test_private_targets_allowed_by_the_switch(fresh_server):
    s = fresh_server
    s.env["LEADFLOW_ALLOW_PRIVATE_TARGETS"] = "1"
    s.env["LEADFLOW_DISPATCHER"] = "0"
    s.start()
    for url in PRIVATE:
        r = s.post("/api/v1/subscriptions", {"url": url})
        assert r.status_code == 201, (url, r.text)
    # the service itself stays refused, by any name of this machine
    for url in (f"http://127.0.0.1:{s.port}/api/v1/events", f"http://localhost:{s.port}/",
                f"http://[::1]:{s.port}/", f"http://0.0.0.0:{s.port}/"):
        doc = problem(s.post("/api/v1/subscriptions", {"url": url}), 400)
        assert doc["detail"] == "url points at leadflow itself", (url, doc)
    # scheme and user info rules do not depend on the switch
    for url in ("ftp://127.0.0.1/", "http://user:pw@127.0.0.1:9/"):
        problem(s.post("/api/v1/subscriptions", {"url": url}), 400)
