"""Team members: list with filters, get, create, patch, delete (refused while they own open
deals), reassignment to a member or by strategy with current_leads kept exact, members away or
inactive left out of rotation, tenants and roles.

Deals are made with the deals API (POST /api/v1/deals) when the server has it; otherwise they
are written into the database file directly, with the owner's current_leads raised as the
engine would."""
import os
import sqlite3
import time
import uuid

import pytest

from conftest import fields_of, problem

MEMBER_KEYS = {"id", "email", "name", "role", "region", "is_active", "max_leads", "current_leads",
               "load", "last_assigned_at", "away_until", "available", "created_at", "updated_at"}


def uniq(prefix="m"):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


_last_ms = [0]


def uuid7():
    """A time-ordered id like the server's (strictly increasing here), so deals written
    directly sort by creation as the server's do."""
    ms = max(int(time.time() * 1000), _last_ms[0] + 1)
    _last_ms[0] = ms
    rand_a = int.from_bytes(os.urandom(2), "big") & 0xFFF
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return str(uuid.UUID(int=(ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b))


def member(s, tenant="default", **kw):
    body = {"email": f"{uniq()}@team.example", "name": "Member", "role": "bdr", **kw}
    r = s.post("/api/v1/team", body, tenant=tenant)
    assert r.status_code == 201, r.text
    return r.json()


def get_member(s, mid):
    r = s.get(f"/api/v1/team/{mid}")
    assert r.status_code == 200, r.text
    return r.json()


def lead(s, region=None):
    body = {"email": f"{uniq('l')}@lead.example"}
    if region:
        body["region"] = region
    r = s.post("/api/v1/leads", body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def db(s):
    return sqlite3.connect(s.db, timeout=10)


def _absent(r):
    """The route is not there (the deals API is being built separately)."""
    return r.status_code == 405 or (r.status_code == 404 and "no such resource" in r.text)


def deals_api(s):
    return not _absent(s.get("/api/v1/deals"))


def insert_deal(s, lead_id, owner, pipeline="b2b"):
    now = int(time.time() * 1000)
    did = uuid7()
    with db(s) as c:
        tid, pid = c.execute(
            "SELECT p.tenant_id, p.id FROM pipelines p JOIN tenants t ON t.id = p.tenant_id"
            " WHERE t.slug = 'default' AND p.slug = ?", (pipeline,)).fetchone()
        sid = c.execute("SELECT id FROM pipeline_stages WHERE tenant_id = ? AND pipeline_id = ?"
                        " AND kind = 'open' ORDER BY position LIMIT 1", (tid, pid)).fetchone()[0]
        c.execute("INSERT INTO deals (id, tenant_id, lead_id, pipeline_id, stage_id, name, status,"
                  " assigned_to, assigned_at, stage_entered_at, created_at, updated_at)"
                  " VALUES (?, ?, ?, ?, ?, 'deal', 'open', ?, ?, ?, ?, ?)",
                  (did, tid, lead_id, pid, sid, owner, now, now, now, now))
        c.execute("UPDATE team_members SET current_leads = current_leads + 1 WHERE id = ?",
                  (owner,))
    return did


def make_deal(s, lead_id, owner, pipeline="b2b"):
    """An open deal of the lead in the pipeline, owned by owner."""
    r = s.post("/api/v1/deals", {"lead_id": lead_id, "pipeline": pipeline, "owner": owner})
    if _absent(r):
        return insert_deal(s, lead_id, owner, pipeline)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def close_deal(s, deal_id):
    r = s.post(f"/api/v1/deals/{deal_id}/close", {"outcome": "lost"})
    if not _absent(r):
        assert r.status_code == 200, r.text
        return
    now = int(time.time() * 1000)
    with db(s) as c:
        owner = c.execute("SELECT assigned_to FROM deals WHERE id = ?", (deal_id,)).fetchone()[0]
        c.execute("UPDATE deals SET status = 'lost', closed_at = ? WHERE id = ?", (now, deal_id))
        c.execute("UPDATE team_members SET current_leads = current_leads - 1 WHERE id = ?",
                  (owner,))


def deal_owner(s, deal_id):
    with db(s) as c:
        return c.execute("SELECT assigned_to FROM deals WHERE id = ?", (deal_id,)).fetchone()[0]


def open_deal_count(s, mid):
    with db(s) as c:
        return c.execute("SELECT count(*) FROM deals WHERE assigned_to = ? AND status = 'open'",
                         (mid,)).fetchone()[0]


def assert_loads_exact(s):
    """Every member's current_leads equals the open deals they own."""
    with db(s) as c:
        rows = c.execute("SELECT id, current_leads FROM team_members").fetchall()
        for mid, cur in rows:
            n = c.execute("SELECT count(*) FROM deals WHERE assigned_to = ? AND status = 'open'",
                          (mid,)).fetchone()[0]
            assert cur == n, (mid, cur, n)


def task(s, title="Call", **kw):
    r = s.post("/api/v1/tasks", {"title": title, **kw})
    assert r.status_code == 201, r.text
    return r.json()


def seeded(s, email):
    return next(m for m in s.get("/api/v1/team?limit=500").json()["items"] if m["email"] == email)


# ---- list, get, create, patch


def test_list_shape_and_seeded_team(server):
    items = server.get("/api/v1/team?limit=500").json()["items"]
    emails = {m["email"] for m in items}
    assert {"anna.accounts@example.com", "ben.bdr@example.com"} <= emails
    for m in items:
        assert set(m) == MEMBER_KEYS, m
    anna = next(m for m in items if m["email"] == "anna.accounts@example.com")
    assert anna["role"] == "account_executive" and anna["region"] == "DACH"
    assert anna["max_leads"] == 60 and anna["is_active"] is True and anna["away_until"] is None
    # a viewer reads
    assert server.get("/api/v1/team", role="viewer").status_code == 200
    assert server.get(f"/api/v1/team/{anna['id']}", role="viewer").json()["email"] == anna["email"]


def test_list_filters_and_pages(server):
    role = uniq("r_")
    a = member(server, role=role, region="North", max_leads=2)
    b = member(server, role=role, region="south", is_active=False)
    c = member(server, role=role, away_until="2999-01-01T00:00:00Z")
    d = member(server, role=role, region="NORTH")

    def ids(query):
        r = server.get(f"/api/v1/team?role={role}&{query}")
        assert r.status_code == 200, r.text
        return [m["id"] for m in r.json()["items"]]

    assert ids("") == [a["id"], b["id"], c["id"], d["id"]]  # oldest first
    assert ids("region=north") == [a["id"], d["id"]]  # case-insensitive
    assert ids("is_active=false") == [b["id"]]
    assert ids("is_active=true") == [a["id"], c["id"], d["id"]]
    assert ids("available=true") == [a["id"], d["id"]]
    assert ids("available=false") == [b["id"], c["id"]]
    # full: max_leads reached takes a member out of the available ones
    with db(server) as conn:
        conn.execute("UPDATE team_members SET current_leads = 2 WHERE id = ?", (a["id"],))
    full = get_member(server, a["id"])
    assert full["available"] is False and full["load"] == 1.0
    assert ids("available=true") == [d["id"]]
    with db(server) as conn:
        conn.execute("UPDATE team_members SET current_leads = 0 WHERE id = ?", (a["id"],))
    # pages of two
    seen, cursor = [], None
    while True:
        q = f"/api/v1/team?role={role}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = server.get(q).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [a["id"], b["id"], c["id"], d["id"]]
    for bad, field in (("is_active=yes", "is_active"), ("available=1", "available"),
                       ("cursor=nope", "cursor"), ("limit=0", "limit")):
        assert field in fields_of(problem(server.get(f"/api/v1/team?{bad}"), 400))


def test_create_get_patch_member(server):
    email = f"{uniq('Eve')}@Team.Example"
    r = server.post("/api/v1/team", {"email": email, "name": "Eve", "role": "account_executive"})
    assert r.status_code == 201, r.text
    m = r.json()
    assert set(m) == MEMBER_KEYS
    assert m["email"] == email.lower() and m["name"] == "Eve" and m["region"] is None
    assert m["max_leads"] == 50 and m["is_active"] is True and m["current_leads"] == 0
    assert m["load"] == 0 and m["available"] is True and m["last_assigned_at"] is None
    assert m["away_until"] is None
    assert get_member(server, m["id"]) == m

    r = server.patch(f"/api/v1/team/{m['id']}", {"name": "Eve E.", "region": "EU", "max_leads": 4})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["name"] == "Eve E." and p["region"] == "EU" and p["max_leads"] == 4
    assert p["email"] == m["email"] and p["updated_at"] >= m["updated_at"]
    # away in the future: out of rotation; in the past or null: back
    p = server.patch(f"/api/v1/team/{m['id']}", {"away_until": "2999-01-01T10:00:00+02:00"}).json()
    assert p["away_until"] == "2999-01-01T08:00:00.000Z" and p["available"] is False
    p = server.patch(f"/api/v1/team/{m['id']}", {"away_until": "2020-01-01T00:00:00Z"}).json()
    assert p["available"] is True
    p = server.patch(f"/api/v1/team/{m['id']}", {"away_until": None, "region": None}).json()
    assert p["away_until"] is None and p["region"] is None
    p = server.patch(f"/api/v1/team/{m['id']}", {"is_active": False}).json()
    assert p["is_active"] is False and p["available"] is False
    assert server.patch(f"/api/v1/team/{m['id']}", {}).status_code == 200

    # read-only and unknown keys: 400, and nothing of the body is applied
    for body, field in (({"name": "X", "current_leads": 9}, "current_leads"),
                        ({"name": "X", "last_assigned_at": "2026-01-01T00:00:00Z"},
                         "last_assigned_at"),
                        ({"name": "X", "colour": "red"}, "colour"),
                        ({"name": "X", "max_leads": 0}, "max_leads"),
                        ({"name": "X", "email": None}, "email"),
                        ({"name": "X", "role": None}, "role"),
                        ({"name": None}, "name")):
        doc = problem(server.patch(f"/api/v1/team/{m['id']}", body), 400)
        assert field in fields_of(doc), doc
    assert get_member(server, m["id"])["name"] == "Eve E."
    missing = str(uuid.uuid4())
    assert "no team member" in problem(server.get(f"/api/v1/team/{missing}"), 404)["detail"]
    problem(server.patch(f"/api/v1/team/{missing}", {"name": "Nobody"}), 404)


def test_create_validates_every_key(server):
    doc = problem(server.post("/api/v1/team", {}), 400)
    assert {"email", "name", "role"} <= fields_of(doc)
    bad = {"email": "not-an-email", "name": "", "role": "Account Executive", "region": 5,
           "max_leads": "50", "is_active": "yes", "away_until": "tomorrow", "id": "x"}
    doc = problem(server.post("/api/v1/team", bad), 400)
    assert fields_of(doc) == set(bad), doc
    for k, v in (("max_leads", 0), ("max_leads", 1.5), ("max_leads", True), ("max_leads", 100001),
                 ("name", "x" * 201), ("region", "")):
        body = {"email": f"{uniq()}@team.example", "name": "V", "role": "bdr", k: v}
        assert fields_of(problem(server.post("/api/v1/team", body), 400)) == {k}
    # exactly at the limits
    member(server, max_leads=1, name="é" * 200)
    problem(server.post("/api/v1/team", [1]), 400)


def test_duplicate_email_is_409(server):
    m = member(server, email="dup@team.example")
    doc = problem(server.post("/api/v1/team", {"email": "DUP@team.example", "name": "Other",
                                               "role": "bdr"}), 409)
    assert fields_of(doc) == {"email"}
    other = member(server)
    doc = problem(server.patch(f"/api/v1/team/{other['id']}",
                               {"email": "dup@team.example", "name": "Renamed"}), 409)
    assert fields_of(doc) == {"email"}
    assert get_member(server, other["id"])["name"] == "Member"  # nothing changed
    # keeping one's own email is no conflict
    assert server.patch(f"/api/v1/team/{m['id']}", {"email": "dup@team.example"}).status_code == 200


# ---- delete


def test_delete_unassigns_open_tasks_and_keeps_history(server):
    m = member(server)
    lid = lead(server)
    open_task = task(server, assigned_to=m["id"], lead_id=lid)
    done_task = task(server, assigned_to=m["id"])
    assert server.post(f"/api/v1/tasks/{done_task['id']}/complete").status_code == 200
    # a closed deal keeps the id as history
    closed = make_deal(server, lid, m["id"])
    close_deal(server, closed)
    assert get_member(server, m["id"])["current_leads"] == 0

    assert server.delete(f"/api/v1/team/{m['id']}").status_code == 204
    problem(server.get(f"/api/v1/team/{m['id']}"), 404)
    assert server.get(f"/api/v1/tasks/{open_task['id']}").json()["assigned_to"] is None
    assert server.get(f"/api/v1/tasks/{done_task['id']}").json()["assigned_to"] == m["id"]
    assert deal_owner(server, closed) == m["id"]
    problem(server.delete(f"/api/v1/team/{m['id']}"), 404)


def test_delete_refused_while_owning_an_open_deal(server):
    m = member(server, role="account_executive")
    to = member(server, role="account_executive")
    deal = make_deal(server, lead(server), m["id"])
    t = task(server, assigned_to=m["id"])
    doc = problem(server.delete(f"/api/v1/team/{m['id']}"), 409)
    assert doc["open_deals"] == 1 and "1 open deal" in doc["detail"], doc
    # nothing changed
    assert get_member(server, m["id"])["current_leads"] == 1
    assert server.get(f"/api/v1/tasks/{t['id']}").json()["assigned_to"] == m["id"]
    # after a reassignment it goes
    r = server.post(f"/api/v1/team/{m['id']}/reassign", {"to": to["id"]})
    assert r.status_code == 200, r.text
    assert server.delete(f"/api/v1/team/{m['id']}").status_code == 204
    assert deal_owner(server, deal) == to["id"]
    assert server.get(f"/api/v1/tasks/{t['id']}").json()["assigned_to"] == to["id"]
    assert_loads_exact(server)


# ---- reassignment


def test_reassign_to_a_member(server):
    a = member(server, role="account_executive")
    b = member(server, role="account_executive")
    deals = [make_deal(server, lead(server), a["id"]) for _ in range(3)]
    closed = make_deal(server, lead(server), a["id"])
    close_deal(server, closed)
    on_deal = task(server, assigned_to=a["id"], deal_id=deals[0])
    others_on_deal = task(server, assigned_to=b["id"], deal_id=deals[1])
    loose = task(server, assigned_to=a["id"])
    done = task(server, assigned_to=a["id"])
    server.post(f"/api/v1/tasks/{done['id']}/complete")
    assert get_member(server, a["id"])["current_leads"] == 3

    r = server.post(f"/api/v1/team/{a['id']}/reassign", {"to": b["id"]})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["reassigned"] == 3 and res["left"] == [] and res["tasks_reassigned"] == 2
    assert res["deals"] == [{"deal_id": d, "to": b["id"]} for d in deals]
    assert get_member(server, a["id"])["current_leads"] == 0 == open_deal_count(server, a["id"])
    bm = get_member(server, b["id"])
    assert bm["current_leads"] == 3 == open_deal_count(server, b["id"])
    assert bm["last_assigned_at"] is not None
    assert deal_owner(server, closed) == a["id"]  # closed deals stay as history
    tk = lambda t: server.get(f"/api/v1/tasks/{t['id']}").json()["assigned_to"]
    assert tk(on_deal) == b["id"] and tk(loose) == b["id"] and tk(others_on_deal) == b["id"]
    assert tk(done) == a["id"]
    assert_loads_exact(server)
    # again: nothing left to move
    res = server.post(f"/api/v1/team/{a['id']}/reassign", {"to": b["id"]}).json()
    assert res == {"reassigned": 0, "left": [], "deals": [], "tasks_reassigned": 0}


def test_reassign_refuses_bad_input(server):
    a = member(server)
    b = member(server)
    deal = make_deal(server, lead(server), a["id"])
    url = f"/api/v1/team/{a['id']}/reassign"
    for body, field in (({"to": a["id"]}, "to"),
                        ({}, "to"),
                        ({"to": b["id"], "strategy": "round_robin"}, "to"),
                        ({"strategy": "manual"}, "strategy"),
                        ({"strategy": "fastest"}, "strategy"),
                        ({"to": 5}, "to"),
                        ({"to": b["id"], "dry_run": True}, "dry_run")):
        doc = problem(server.post(url, body), 400)
        assert field in fields_of(doc), (body, doc)
    problem(server.post(url, {"to": str(uuid.uuid4())}), 404)
    problem(server.post(f"/api/v1/team/{uuid.uuid4()}/reassign", {"to": b["id"]}), 404)
    problem(server.post(url, {"to": b["id"]}, role="sales"), 403)
    problem(server.post(url, {"to": b["id"]}, role="viewer"), 403)
    assert deal_owner(server, deal) == a["id"]
    assert get_member(server, a["id"])["current_leads"] == 1


def _only_team(s):
    """Deactivates the seeded account executives so a test's own members are the pool."""
    for m in s.get("/api/v1/team?role=account_executive&limit=500").json()["items"]:
        s.patch(f"/api/v1/team/{m['id']}", {"is_active": False})


def test_reassign_by_strategy(fresh_server):
    s = fresh_server.start()
    _only_team(s)
    x = member(s, role="account_executive", region="DACH")
    dach = member(s, role="account_executive", region="dach", max_leads=10)
    eu1 = member(s, role="account_executive", region="EU", max_leads=10)
    eu2 = member(s, role="account_executive", region="EU", max_leads=2)
    busy = make_deal(s, lead(s), eu1["id"])  # eu1 carries one already
    deals = {
        "dach": make_deal(s, lead(s, "DACH"), x["id"]),
        "eu_a": make_deal(s, lead(s, "EU"), x["id"]),
        "eu_b": make_deal(s, lead(s, "EU"), x["id"]),
        "eu_c": make_deal(s, lead(s, "EU"), x["id"]),
    }
    on_deal = task(s, assigned_to=x["id"], deal_id=deals["eu_a"])
    loose = task(s, assigned_to=x["id"])

    r = s.post(f"/api/v1/team/{x['id']}/reassign", {"strategy": "capacity_based"})
    assert r.status_code == 200, r.text
    res = r.json()
    got = {d["deal_id"]: d["to"] for d in res["deals"]}
    assert res["reassigned"] == 4 and res["left"] == [], res
    assert got[deals["dach"]] == dach["id"]  # the lead's region first (case-insensitive)
    # EU: lowest load among the EU members: eu2 (0/2) before eu1 (1/10); then eu1 (1/10 < 1/2);
    # then eu1 (2/10 < 1/2)
    assert [got[deals[k]] for k in ("eu_a", "eu_b", "eu_c")] == [eu2["id"], eu1["id"], eu1["id"]]
    assert s.get(f"/api/v1/tasks/{on_deal['id']}").json()["assigned_to"] == eu2["id"]
    assert s.get(f"/api/v1/tasks/{loose['id']}").json()["assigned_to"] == x["id"]  # stays
    assert res["tasks_reassigned"] == 1
    assert get_member(s, x["id"])["current_leads"] == 0
    assert get_member(s, eu1["id"])["current_leads"] == 3
    assert_loads_exact(s)

    # round robin: the one assigned longest ago, in the region: eu2 (assigned before eu1's
    # two), which is then full (2 of 2), so eu1
    y = member(s, role="account_executive", region="EU")
    rr = [make_deal(s, lead(s, "EU"), y["id"]) for _ in range(2)]
    res = s.post(f"/api/v1/team/{y['id']}/reassign", {"strategy": "round_robin"}).json()
    assert res["deals"] == [{"deal_id": rr[0], "to": eu2["id"]},
                            {"deal_id": rr[1], "to": eu1["id"]}], res
    assert get_member(s, eu2["id"])["available"] is False
    assert deal_owner(s, busy) == eu1["id"]  # eu1's own deal untouched
    assert_loads_exact(s)


def test_away_inactive_and_full_members_are_not_picked(fresh_server):
    s = fresh_server.start()
    _only_team(s)
    x = member(s, role="account_executive")
    away = member(s, role="account_executive", away_until="2999-01-01T00:00:00Z")
    inactive = member(s, role="account_executive", is_active=False)
    full = member(s, role="account_executive", max_leads=1)
    make_deal(s, lead(s), full["id"])
    stuck = make_deal(s, lead(s), x["id"])
    t = task(s, assigned_to=x["id"], deal_id=stuck)
    for strategy in ("round_robin", "capacity_based"):
        r = s.post(f"/api/v1/team/{x['id']}/reassign", {"strategy": strategy})
        assert r.status_code == 200, r.text
        assert r.json() == {"reassigned": 0, "left": [stuck], "deals": [], "tasks_reassigned": 0}
    assert deal_owner(s, stuck) == x["id"] and get_member(s, x["id"])["current_leads"] == 1
    assert s.get(f"/api/v1/tasks/{t['id']}").json()["assigned_to"] == x["id"]
    # back from leave (away_until passed): picked
    s.patch(f"/api/v1/team/{away['id']}", {"away_until": "2020-01-01T00:00:00Z"})
    res = s.post(f"/api/v1/team/{x['id']}/reassign", {"strategy": "round_robin"}).json()
    assert res["deals"] == [{"deal_id": stuck, "to": away["id"]}] and res["left"] == []
    assert s.get(f"/api/v1/tasks/{t['id']}").json()["assigned_to"] == away["id"]
    assert inactive["id"] not in {d["to"] for d in res["deals"]}
    assert_loads_exact(s)


def test_new_deals_skip_away_and_inactive_members(fresh_server):
    s = fresh_server.start()
    if not deals_api(s):
        pytest.skip("the deals API (POST /api/v1/deals) is not in this build")
    _only_team(s)
    away = member(s, role="account_executive", away_until="2999-01-01T00:00:00Z")
    member(s, role="account_executive", is_active=False)
    r = s.post("/api/v1/deals", {"lead_id": lead(s), "pipeline": "b2b"})
    assert r.status_code == 201, r.text
    assert deal_owner(s, r.json()["id"]) is None  # nobody eligible
    s.patch(f"/api/v1/team/{away['id']}", {"away_until": None})
    r = s.post("/api/v1/deals", {"lead_id": lead(s), "pipeline": "b2b"})
    assert r.status_code == 201, r.text
    assert deal_owner(s, r.json()["id"]) == away["id"]
    assert_loads_exact(s)


# ---- roles and tenants


def test_viewer_and_sales_cannot_change_the_team(server):
    m = member(server)
    body = {"email": f"{uniq()}@team.example", "name": "N", "role": "bdr"}
    for role in ("viewer", "sales"):
        problem(server.post("/api/v1/team", body, role=role), 403)
        problem(server.patch(f"/api/v1/team/{m['id']}", {"name": "Z"}, role=role), 403)
        problem(server.delete(f"/api/v1/team/{m['id']}", role=role), 403)
    problem(server.get("/api/v1/team", role="ingest"), 403)
    assert server.post("/api/v1/team", body, role="manager").status_code == 201
    assert get_member(server, m["id"])["name"] == "Member"


def test_other_tenant_sees_none_of_it(server):
    server.cli("tenant", "add", "teamco", "Team Co")
    m = member(server)
    theirs = server.get("/api/v1/team?limit=500", tenant="teamco").json()["items"]
    ours = {x["id"] for x in server.get("/api/v1/team?limit=500").json()["items"]}
    assert theirs and not ({x["id"] for x in theirs} & ours)  # their own seeded team only
    problem(server.get(f"/api/v1/team/{m['id']}", tenant="teamco"), 404)
    problem(server.patch(f"/api/v1/team/{m['id']}", {"name": "Mine"}, tenant="teamco"), 404)
    problem(server.delete(f"/api/v1/team/{m['id']}", tenant="teamco"), 404)
    problem(server.post(f"/api/v1/team/{m['id']}/reassign", {"strategy": "round_robin"},
                        tenant="teamco"), 404)
    # reassigning one of theirs to one of ours: our member is unknown there
    problem(server.post(f"/api/v1/team/{theirs[0]['id']}/reassign", {"to": m["id"]},
                        tenant="teamco"), 404)
    # the same email may exist in both tenants
    r = server.post("/api/v1/team", {"email": m["email"], "name": "Twin", "role": "bdr"},
                    tenant="teamco")
    assert r.status_code == 201, r.text
    assert get_member(server, m["id"])["name"] == "Member"
