"""Tasks: create (task.created as a domain event), list filters including overdue by the test
clock, patch, complete (twice is a conflict), delete; tenants and roles."""
import sqlite3
import time
import uuid

from conftest import fields_of, problem

TASK_KEYS = {"id", "lead_id", "deal_id", "title", "task_type", "assigned_to", "due_at", "status",
             "completed_at", "notes", "created_by", "created_at", "updated_at", "overdue"}


def uniq(prefix="t"):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def member(s, tenant="default", **kw):
    body = {"email": f"{uniq()}@team.example", "name": "Member", "role": "bdr", **kw}
    r = s.post("/api/v1/team", body, tenant=tenant)
    assert r.status_code == 201, r.text
    return r.json()


def lead(s, tenant="default"):
    r = s.post("/api/v1/leads", {"email": f"{uniq('l')}@lead.example"}, tenant=tenant)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def deal(s, lead_id):
    """An open deal of the lead (deals API when there, else written directly, unowned)."""
    r = s.post("/api/v1/deals", {"lead_id": lead_id, "pipeline": "b2b"})
    if r.status_code == 201:
        return r.json()["id"]
    assert r.status_code == 405 or (r.status_code == 404 and "no such resource" in r.text), r.text
    did, now = str(uuid.uuid4()), int(time.time() * 1000)
    with sqlite3.connect(s.db, timeout=10) as c:
        tid, pid = c.execute(
            "SELECT p.tenant_id, p.id FROM pipelines p JOIN tenants t ON t.id = p.tenant_id"
            " WHERE t.slug = 'default' AND p.slug = 'b2b'").fetchone()
        sid = c.execute("SELECT id FROM pipeline_stages WHERE pipeline_id = ? AND kind = 'open'"
                        " ORDER BY position LIMIT 1", (pid,)).fetchone()[0]
        c.execute("INSERT INTO deals (id, tenant_id, lead_id, pipeline_id, stage_id, name, status,"
                  " stage_entered_at, created_at, updated_at)"
                  " VALUES (?, ?, ?, ?, ?, 'deal', 'open', ?, ?, ?)",
                  (did, tid, lead_id, pid, sid, now, now, now))
    return did


def create(s, role="admin", tenant="default", **body):
    r = s.post("/api/v1/tasks", {"title": "Call back", **body}, role=role, tenant=tenant)
    assert r.status_code == 201, r.text
    return r.json()


def get(s, tid):
    r = s.get(f"/api/v1/tasks/{tid}")
    assert r.status_code == 200, r.text
    return r.json()


def listed(s, query):
    r = s.get(f"/api/v1/tasks?limit=500&{query}")
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["items"]]


def set_clock(server, now):
    r = server.put("/api/v1/test/clock", {"now": now})
    assert r.status_code == 200, r.text
    server.env["LEADFLOW_TEST_NOW"] = now
    server._tokens.clear()


def test_create_task_emits_task_created(server):
    m = member(server)
    lid = lead(server)
    body = {"title": "Send the offer", "lead_id": lid, "task_type": "email",
            "assigned_to": m["id"], "due_at": "2030-05-01T09:00:00+02:00",
            "notes": "ask for the PO number"}
    r = server.post("/api/v1/tasks", body, headers={"X-Request-Id": "req-task-1"})
    assert r.status_code == 201, r.text
    t = r.json()
    assert set(t) == TASK_KEYS
    assert t["title"] == "Send the offer" and t["lead_id"] == lid and t["deal_id"] is None
    assert t["task_type"] == "email" and t["assigned_to"] == m["id"]
    assert t["due_at"] == "2030-05-01T07:00:00.000Z" and t["status"] == "open"
    assert t["completed_at"] is None and t["notes"] == "ask for the PO number"
    assert t["created_by"] == "admin" and t["overdue"] is False
    assert get(server, t["id"]) == t
    # task.created, about the lead
    evs = server.get("/api/v1/events", params={"event_type": "task.created",
                                               "lead_id": lid}).json()["items"]
    assert len(evs) == 1 and evs[0]["source"] == "leadflow", evs
    assert evs[0]["metadata"]["task"]["id"] == t["id"] and evs[0]["metadata"]["by"] == "admin"
    tl = server.get(f"/api/v1/leads/{lid}/timeline").json()["items"]
    assert any(i["kind"] == "domain_event" and i["event_type"] == "task.created" for i in tl)
    # the smallest task: defaults
    t = create(server, role="sales")
    assert t["task_type"] == "todo" and t["lead_id"] is None and t["assigned_to"] is None
    assert t["due_at"] is None and t["notes"] is None and t["created_by"] == "sales"


def test_create_task_on_a_deal_takes_its_lead(server):
    lid = lead(server)
    did = deal(server, lid)
    t = create(server, deal_id=did)
    assert t["deal_id"] == did and t["lead_id"] == lid
    assert create(server, deal_id=did, lead_id=lid)["lead_id"] == lid
    assert t["id"] in listed(server, f"deal={did}")
    # a lead that is not the deal's
    doc = problem(server.post("/api/v1/tasks", {"title": "x", "deal_id": did,
                                                "lead_id": lead(server)}), 400)
    assert fields_of(doc) == {"lead_id"}


def test_create_task_for_a_merged_lead_lands_on_its_survivor(server):
    older, newer = lead(server), lead(server)
    r = server.post(f"/api/v1/leads/{older}/merge", {"other_id": newer})
    assert r.status_code == 200, r.text
    assert create(server, lead_id=newer)["lead_id"] == older


def test_create_task_validates_and_changes_nothing(server):
    before = len(listed(server, ""))
    problem(server.post("/api/v1/tasks", {}), 400)
    for body, field in (({"title": ""}, "title"),
                        ({"title": "x" * 501}, "title"),
                        ({"title": 5}, "title"),
                        ({"title": "x", "task_type": "Phone Call"}, "task_type"),
                        ({"title": "x", "task_type": None}, "task_type"),
                        ({"title": "x", "due_at": "soon"}, "due_at"),
                        ({"title": "x", "notes": 5}, "notes"),
                        ({"title": "x", "assigned_to": 7}, "assigned_to"),
                        ({"title": "x", "status": "done"}, "status"),
                        ({"title": "x", "priority": "high"}, "priority")):
        doc = problem(server.post("/api/v1/tasks", body), 400)
        assert fields_of(doc) == {field}, (body, doc)
    missing = str(uuid.uuid4())
    assert "no lead" in problem(server.post("/api/v1/tasks", {"title": "x", "lead_id": missing}),
                                404)["detail"]
    assert "no deal" in problem(server.post("/api/v1/tasks", {"title": "x", "deal_id": missing}),
                                404)["detail"]
    doc = problem(server.post("/api/v1/tasks", {"title": "x", "assigned_to": missing}), 404)
    assert "no team member" in doc["detail"]
    assert len(listed(server, "")) == before
    # 500 characters, not bytes
    assert len(create(server, title="é" * 500)["title"]) == 500


def test_list_filters(server):
    m, other = member(server), member(server)
    lid = lead(server)
    past, future = "2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z"
    t1 = create(server, assigned_to=m["id"], lead_id=lid, due_at=past)
    t2 = create(server, assigned_to=m["id"], due_at=future)
    t3 = create(server, assigned_to=m["id"])
    t4 = create(server, assigned_to=m["id"], due_at=past)
    assert server.post(f"/api/v1/tasks/{t4['id']}/complete").status_code == 200
    t5 = create(server, assigned_to=m["id"], due_at="2025-06-01T00:00:00Z")
    assert server.patch(f"/api/v1/tasks/{t5['id']}", {"status": "cancelled"}).status_code == 200
    t6 = create(server, assigned_to=other["id"], due_at=past)
    ids = lambda *ts: [t["id"] for t in ts]
    own = f"owner={m['id']}"

    assert listed(server, own) == ids(t1, t2, t3, t4, t5)  # by id: creation order
    assert listed(server, f"lead={lid}") == ids(t1)
    assert listed(server, f"{own}&status=open") == ids(t1, t2, t3)
    assert listed(server, f"{own}&status=done") == ids(t4)
    assert listed(server, f"{own}&status=cancelled") == ids(t5)
    assert listed(server, f"{own}&overdue=true") == ids(t1)  # open and due before now
    assert listed(server, f"{own}&overdue=false") == ids(t2, t3, t4, t5)
    assert listed(server, f"{own}&due_before=2026-01-01T00:00:00Z") == ids(t1, t4, t5)
    assert listed(server, f"{own}&due_after=2026-01-01T00:00:00Z") == ids(t2)
    assert listed(server, f"{own}&due_after=2025-01-01T00:00:00%2B00:00"
                          "&due_before=2026-01-01T00:00:00Z") == ids(t5)
    assert get(server, t1["id"])["overdue"] is True and get(server, t4["id"])["overdue"] is False
    assert t6["id"] in listed(server, "overdue=true")
    unassigned = create(server)
    assert unassigned["id"] in listed(server, "owner=none")
    assert not set(ids(t1, t2, t3, t6)) & set(listed(server, "owner=none"))
    # pages
    seen, cursor = [], None
    while True:
        r = server.get(f"/api/v1/tasks?{own}&limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += [t["id"] for t in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ids(t1, t2, t3, t4, t5)
    for bad, field in (("status=closed", "status"), ("overdue=yes", "overdue"),
                       ("due_before=tomorrow", "due_before"), ("due_after=1", "due_after"),
                       ("cursor=abc", "cursor")):
        assert field in fields_of(problem(server.get(f"/api/v1/tasks?{bad}"), 400))
    assert server.get(f"/api/v1/tasks?{own}", role="viewer").status_code == 200


def test_overdue_follows_the_clock(fresh_server):
    s = fresh_server
    s.env["LEADFLOW_TEST_NOW"] = "2026-05-01T12:00:00Z"
    s.start()
    t = create(s, due_at="2026-05-01T13:00:00Z")
    assert t["overdue"] is False and listed(s, "overdue=true") == []
    set_clock(s, "2026-05-01T14:00:00Z")
    assert get(s, t["id"])["overdue"] is True
    assert listed(s, "overdue=true") == [t["id"]]
    r = s.post(f"/api/v1/tasks/{t['id']}/complete")
    assert r.status_code == 200, r.text
    assert r.json()["completed_at"].startswith("2026-05-01T14:0")  # the moved clock
    assert r.json()["overdue"] is False and listed(s, "overdue=true") == []


def test_patch_task(server):
    m = member(server)
    t = create(server, due_at="2030-01-01T00:00:00Z", notes="n")
    url = f"/api/v1/tasks/{t['id']}"
    r = server.patch(url, {"title": "Demo", "task_type": "meeting", "assigned_to": m["id"],
                           "due_at": None, "notes": None})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["title"] == "Demo" and p["task_type"] == "meeting" and p["assigned_to"] == m["id"]
    assert p["due_at"] is None and p["notes"] is None and p["updated_at"] >= t["updated_at"]
    p = server.patch(url, {"status": "cancelled"}).json()
    assert p["status"] == "cancelled" and p["completed_at"] is None
    p = server.patch(url, {"status": "open", "assigned_to": None}).json()
    assert p["status"] == "open" and p["assigned_to"] is None
    for body, field in (({"status": "done"}, "status"), ({"status": "later"}, "status"),
                        ({"lead_id": None}, "lead_id"), ({"deal_id": None}, "deal_id"),
                        ({"title": None}, "title"), ({"id": "x"}, "id"),
                        ({"title": "New", "created_by": "me"}, "created_by")):
        doc = problem(server.patch(url, body), 400)
        assert fields_of(doc) == {field}, (body, doc)
    assert "complete" in problem(server.patch(url, {"status": "done"}), 400)["errors"][0]["message"]
    # an unknown member: 404, and nothing of the body applied
    problem(server.patch(url, {"title": "Changed", "assigned_to": str(uuid.uuid4())}), 404)
    assert get(server, t["id"])["title"] == "Demo"
    problem(server.patch(f"/api/v1/tasks/{uuid.uuid4()}", {"title": "x"}), 404)


def test_complete_task(server):
    t = create(server, due_at="2020-01-01T00:00:00Z")
    url = f"/api/v1/tasks/{t['id']}/complete"
    r = server.post(url)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "done" and done["completed_at"] is not None
    assert done["overdue"] is False
    doc = problem(server.post(url), 409)
    assert "done already" in doc["detail"]
    assert get(server, t["id"])["completed_at"] == done["completed_at"]
    # reopened, then done again
    p = server.patch(f"/api/v1/tasks/{t['id']}", {"status": "open"}).json()
    assert p["status"] == "open" and p["completed_at"] is None and p["overdue"] is True
    assert server.post(url).status_code == 200
    # a cancelled task is reopened first
    c = create(server)
    server.patch(f"/api/v1/tasks/{c['id']}", {"status": "cancelled"})
    assert "cancelled" in problem(server.post(f"/api/v1/tasks/{c['id']}/complete"), 409)["detail"]
    problem(server.post(f"/api/v1/tasks/{uuid.uuid4()}/complete"), 404)


def test_delete_task(server):
    t = create(server)
    assert server.delete(f"/api/v1/tasks/{t['id']}").status_code == 204
    problem(server.get(f"/api/v1/tasks/{t['id']}"), 404)
    problem(server.delete(f"/api/v1/tasks/{t['id']}"), 404)


def test_viewer_cannot_write(server):
    t = create(server)
    for body_call in (lambda: server.post("/api/v1/tasks", {"title": "x"}, role="viewer"),
                      lambda: server.patch(f"/api/v1/tasks/{t['id']}", {"title": "x"},
                                           role="viewer"),
                      lambda: server.post(f"/api/v1/tasks/{t['id']}/complete", role="viewer"),
                      lambda: server.delete(f"/api/v1/tasks/{t['id']}", role="viewer")):
        problem(body_call(), 403)
    assert get(server, t["id"])["status"] == "open"
    assert server.get(f"/api/v1/tasks/{t['id']}", role="viewer").status_code == 200
    # sales writes tasks
    assert server.post(f"/api/v1/tasks/{t['id']}/complete", role="sales").status_code == 200
    assert server.delete(f"/api/v1/tasks/{t['id']}", role="sales").status_code == 204


def test_other_tenant_sees_none_of_it(server):
    server.cli("tenant", "add", "taskco", "Task Co")
    m = member(server)
    lid = lead(server)
    t = create(server, lead_id=lid, assigned_to=m["id"])
    assert t["id"] in listed(server, "")
    r = server.get("/api/v1/tasks?limit=500", tenant="taskco")
    assert r.status_code == 200 and r.json()["items"] == []
    assert server.get(f"/api/v1/tasks?owner={m['id']}", tenant="taskco").json()["items"] == []
    problem(server.get(f"/api/v1/tasks/{t['id']}", tenant="taskco"), 404)
    problem(server.patch(f"/api/v1/tasks/{t['id']}", {"title": "mine"}, tenant="taskco"), 404)
    problem(server.post(f"/api/v1/tasks/{t['id']}/complete", tenant="taskco"), 404)
    problem(server.delete(f"/api/v1/tasks/{t['id']}", tenant="taskco"), 404)
    # our lead and member are unknown there
    problem(server.post("/api/v1/tasks", {"title": "x", "lead_id": lid}, tenant="taskco"), 404)
    problem(server.post("/api/v1/tasks", {"title": "x", "assigned_to": m["id"]}, tenant="taskco"),
            404)
    # their own task is theirs only
    theirs = create(server, tenant="taskco")
    problem(server.get(f"/api/v1/tasks/{theirs['id']}"), 404)
    assert get(server, t["id"])["title"] == "Call back"
