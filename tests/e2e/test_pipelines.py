"""Pipelines and stages: the default pipelines, create / change / delete, stage positions and
reorder, what deals in a pipeline or stage forbid, the board, tenants and roles. Each test works
in a tenant of its own (seeded with the default pipelines). Deals are written straight into the
server's SQLite file: these tests are about pipelines, not about the deals API."""
import sqlite3
import time
import uuid

import pytest

from conftest import fields_of, problem

P = "/api/v1/pipelines"


def uniq(p="x"):
    return f"{p}-{uuid.uuid4().hex[:8]}"


class Tenant:
    """A fresh tenant of the shared server, and deals written into its store directly."""

    def __init__(self, server):
        self.s = server
        self.slug = uniq("t")
        server.cli("tenant", "add", self.slug, "Test " + self.slug)
        deadline = time.time() + 10
        while self.get(P).status_code != 200:  # the auth cache reloads every 2 s
            assert time.time() < deadline
            time.sleep(0.1)
        with self.db() as db:
            row = db.execute("SELECT id FROM tenants WHERE slug = ?", (self.slug,)).fetchone()
        self.id = row[0]

    def db(self):
        return sqlite3.connect(self.s.db, timeout=10)

    def get(self, path, role="admin", **kw):
        return self.s.get(path, role=role, tenant=self.slug, **kw)

    def post(self, path, body=None, role="admin"):
        return self.s.post(path, body, role=role, tenant=self.slug)

    def patch(self, path, body, role="admin"):
        return self.s.patch(path, body, role=role, tenant=self.slug)

    def put(self, path, body, role="admin"):
        return self.s.put(path, body, role=role, tenant=self.slug)

    def delete(self, path, role="admin"):
        return self.s.delete(path, role=role, tenant=self.slug)

    def pipeline(self, ref):
        r = self.get(f"{P}/{ref}")
        assert r.status_code == 200, r.text
        return r.json()

    def pipelines(self):
        r = self.get(P)
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def create(self, **fields):
        body = {"slug": uniq("p"), "name": "Pipe", "owner_role": "account_executive"}
        body.update(fields)
        r = self.post(P, body)
        assert r.status_code == 201, r.text
        return r.json()

    def lead(self, **fields):
        r = self.post("/api/v1/leads", {"email": f"{uniq('l')}@deal.example", **fields})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def deal(self, pipeline, stage, value=0, status="open", entered=1_000, currency="EUR",
             lead=None):
        """Writes a deal row as the deals API will; returns its id."""
        did = str(uuid.uuid4())
        lead = lead or self.lead()
        with self.db() as db:
            db.execute(
                "INSERT INTO deals (id, tenant_id, lead_id, pipeline_id, stage_id, name,"
                " value_cents, currency, status, stage_entered_at, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (did, self.id, lead, pipeline["id"], stage["id"], "Deal " + did[:4], value,
                 currency, status, entered, entered, entered))
        return did


def stage_of(pipeline, slug):
    return next(s for s in pipeline["stages"] if s["slug"] == slug)


def slugs(pipeline):
    return [s["slug"] for s in pipeline["stages"]]


def assert_positions(items):
    assert [x["position"] for x in items] == list(range(1, len(items) + 1))


@pytest.fixture
def t(server):
    return Tenant(server)


def test_default_pipelines_listed_with_stages(t):
    r = t.get(P)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["next_cursor"] is None
    items = doc["items"]
    assert [p["slug"] for p in items] == ["research", "b2b", "co-creation", "discovery"]
    assert_positions(items)
    b2b = items[1]
    assert b2b["name"] == "B2B" and b2b["intent"] == "b2b"
    assert b2b["owner_role"] == "account_executive" and b2b["is_discovery"] is False
    assert b2b["created_at"].endswith("Z") and b2b["updated_at"].endswith("Z")
    assert slugs(b2b) == ["new", "qualified", "demo", "proposal", "negotiation", "won", "lost"]
    assert_positions(b2b["stages"])
    assert [s["kind"] for s in b2b["stages"]][-2:] == ["won", "lost"]
    assert all(s["automation"] == [] and s["pipeline_id"] == b2b["id"] for s in b2b["stages"])
    disc = items[3]
    assert disc["is_discovery"] is True and disc["intent"] is None and disc["owner_role"] == "bdr"
    # by id or by slug, the same document
    assert t.pipeline(b2b["id"]) == b2b == t.pipeline("b2b")
    problem(t.get(f"{P}/nope"), 404)
    problem(t.get(f"{P}/{uuid.uuid4()}"), 404)


def test_create_pipeline_with_default_stages(t):
    p = t.create(slug="partners", name="Partners", intent="partnering")
    assert p["slug"] == "partners" and p["intent"] == "partnering" and p["is_discovery"] is False
    assert p["position"] == 5  # last by default
    assert [(s["slug"], s["kind"]) for s in p["stages"]] == [
        ("new", "open"), ("won", "won"), ("lost", "lost")]
    assert_positions(p["stages"])
    assert t.pipelines()[-1]["id"] == p["id"]


def test_create_pipeline_at_a_position_with_stages(t):
    p = t.create(position=2, is_discovery=True, intent=None, stages=[
        {"slug": "lead-in", "name": "Lead in"},
        {"slug": "pitch", "name": "Pitch", "kind": "open"},
        {"slug": "signed", "name": "Signed", "kind": "won"}])
    assert p["position"] == 2 and p["is_discovery"] is True and p["intent"] is None
    assert slugs(p) == ["lead-in", "pitch", "signed"]
    assert [s["kind"] for s in p["stages"]] == ["open", "open", "won"]
    assert stage_of(p, "pitch")["automation"] == []
    items = t.pipelines()
    assert [x["slug"] for x in items] == ["research", p["slug"], "b2b", "co-creation", "discovery"]
    assert_positions(items)


def test_slug_taken_is_409(t):
    doc = problem(t.post(P, {"slug": "b2b", "name": "Again", "owner_role": "bdr"}), 409)
    assert fields_of(doc) == {"slug"}
    other = t.create()
    doc = problem(t.patch(f"{P}/{other['id']}", {"slug": "research"}), 409)
    assert fields_of(doc) == {"slug"}
    assert t.pipeline(other["id"])["slug"] == other["slug"]
    assert len(t.pipelines()) == 5


@pytest.mark.parametrize("body,field", [
    ({"slug": "x1", "name": "X", "owner_role": "bdr", "colour": "red"}, "colour"),
    ({"slug": "Bad Slug", "name": "X", "owner_role": "bdr"}, "slug"),
    ({"slug": str(uuid.uuid4()), "name": "X", "owner_role": "bdr"}, "slug"),
    ({"slug": "x1", "name": "", "owner_role": "bdr"}, "name"),
    ({"slug": "x1", "name": "   ", "owner_role": "bdr"}, "name"),
    ({"slug": "x1", "name": "n" * 201, "owner_role": "bdr"}, "name"),
    ({"slug": "x1", "name": "X", "owner_role": "Sales Lead"}, "owner_role"),
    ({"slug": "x1", "name": "X"}, "owner_role"),
    ({"name": "X", "owner_role": "bdr"}, "slug"),
    ({"slug": "x1", "name": "X", "owner_role": "bdr", "intent": 3}, "intent"),
    ({"slug": "x1", "name": "X", "owner_role": "bdr", "is_discovery": 1}, "is_discovery"),
    ({"slug": "x1", "name": "X", "owner_role": "bdr", "position": "1"}, "position"),
    ({"slug": "x1", "name": "X", "owner_role": "bdr", "position": 0}, "position"),
    ({"slug": "x1", "name": "X", "owner_role": "bdr", "position": 6}, "position"),
    ({"slug": "x1", "name": "X", "owner_role": "bdr", "stages": []}, "stages"),
    ({"slug": "x1", "name": "X", "owner_role": "bdr",
      "stages": [{"slug": "a", "name": "A", "kind": "won"}]}, "stages"),
    ({"slug": "x1", "name": "X", "owner_role": "bdr",
      "stages": [{"slug": "a", "name": "A", "kind": "maybe"}]}, "stages[0].kind"),
    ({"slug": "x1", "name": "X", "owner_role": "bdr",
      "stages": [{"slug": "a", "name": "A"}, {"slug": "a", "name": "B"}]}, "stages[1].slug"),
    ({"slug": "x1", "name": "X", "owner_role": "bdr",
      "stages": [{"slug": "a", "name": "A", "position": 1}]}, "stages[0].position"),
    ({"slug": "x1", "name": "X", "owner_role": "bdr",
      "stages": [{"slug": "a", "name": "A", "automation": [1]}]}, "stages[0].automation"),
])
def test_bad_pipeline_is_400_naming_the_field_and_changes_nothing(t, body, field):
    before = t.pipelines()
    doc = problem(t.post(P, body), 400)
    assert field in fields_of(doc), doc
    assert t.pipelines() == before


def test_patch_pipeline(t):
    p = t.create(intent="research")
    r = t.patch(f"{P}/{p['slug']}", {"name": "Renamed", "intent": None, "is_discovery": True,
                                      "owner_role": "bdr", "slug": "renamed", "position": 1})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["name"] == "Renamed" and got["intent"] is None and got["is_discovery"] is True
    assert got["owner_role"] == "bdr" and got["slug"] == "renamed" and got["position"] == 1
    assert got["updated_at"] >= p["updated_at"] and got["stages"] == p["stages"]
    items = t.pipelines()
    assert [x["slug"] for x in items] == ["renamed", "research", "b2b", "co-creation", "discovery"]
    assert_positions(items)
    # the other way: to the end
    assert t.patch(f"{P}/renamed", {"position": 5}).json()["position"] == 5
    assert [x["slug"] for x in t.pipelines()][-1] == "renamed"
    assert t.patch(f"{P}/renamed", {}).status_code == 200
    # bad input: 400 naming every bad field, nothing changed
    before = t.pipelines()
    for body, field in [({"stages": []}, "stages"), ({"name": None}, "name"),
                        ({"owner_role": None}, "owner_role"), ({"position": 6}, "position"),
                        ({"slug": "Bad"}, "slug"), ({"id": "x"}, "id")]:
        doc = problem(t.patch(f"{P}/renamed", {"name": "Changed", **body}), 400)
        assert field in fields_of(doc), (body, doc)
    assert t.pipelines() == before
    problem(t.patch(f"{P}/nope", {"name": "x"}), 404)


def test_delete_pipeline_closes_the_gap(t):
    p = t.create(position=2)
    assert t.delete(f"{P}/{p['id']}").status_code == 204
    problem(t.get(f"{P}/{p['id']}"), 404)
    problem(t.delete(f"{P}/{p['id']}"), 404)
    items = t.pipelines()
    assert [x["slug"] for x in items] == ["research", "b2b", "co-creation", "discovery"]
    assert_positions(items)
    with t.db() as db:
        assert db.execute("SELECT COUNT(*) FROM pipeline_stages WHERE pipeline_id = ?",
                          (p["id"],)).fetchone()[0] == 0


def test_stage_create_at_a_position_patch_and_delete(t):
    p = t.create()
    base = f"{P}/{p['slug']}/stages"
    r = t.post(base, {"slug": "demo", "name": "Demo", "position": 2})
    assert r.status_code == 201, r.text
    demo = r.json()
    assert demo["position"] == 2 and demo["kind"] == "open" and demo["pipeline_id"] == p["id"]
    assert demo["automation"] == []
    r = t.post(base, {"slug": "parked", "name": "Parked", "kind": "lost"})  # last by default
    assert r.status_code == 201 and r.json()["position"] == 5, r.text
    got = t.pipeline(p["id"])
    assert slugs(got) == ["new", "demo", "won", "lost", "parked"]
    assert_positions(got["stages"])
    assert got["updated_at"] >= p["updated_at"]

    r = t.patch(f"{base}/demo", {"name": "Live demo", "slug": "live-demo"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Live demo" and r.json()["slug"] == "live-demo"
    assert r.json()["automation"] == [] and r.json()["id"] == demo["id"]
    r = t.patch(f"{base}/{demo['id']}", {"kind": "won", "position": 1})
    assert r.status_code == 200 and r.json()["kind"] == "won" and r.json()["position"] == 1
    assert slugs(t.pipeline(p["id"])) == ["live-demo", "new", "won", "lost", "parked"]
    doc = problem(t.patch(f"{base}/live-demo", {"slug": "won"}), 409)
    assert fields_of(doc) == {"slug"}
    doc = problem(t.post(base, {"slug": "new", "name": "New again"}), 409)
    assert fields_of(doc) == {"slug"}

    # bad input changes nothing
    before = t.pipeline(p["id"])
    for body, field in [({"slug": "x", "name": "X", "position": 7}, "position"),
                        ({"slug": "x", "name": "X", "position": 0}, "position"),
                        ({"slug": "x", "name": "X", "automation": {"a": 1}}, "automation"),
                        ({"slug": "x", "name": "X", "automation": []}, "automation"),
                        ({"slug": "x", "name": "X", "kind": "closed"}, "kind"),
                        ({"slug": "x"}, "name"),
                        ({"slug": "x", "name": "X", "colour": 1}, "colour")]:
        doc = problem(t.post(base, body), 400)
        assert field in fields_of(doc), (body, doc)
    for body, field in [({"kind": "maybe"}, "kind"), ({"position": 6}, "position"),
                        ({"name": ""}, "name"), ({"automation": "[]"}, "automation"),
                        ({"pipeline_id": "x"}, "pipeline_id")]:
        doc = problem(t.patch(f"{base}/new", body), 400)
        assert field in fields_of(doc), (body, doc)
    assert t.pipeline(p["id"]) == before
    problem(t.patch(f"{base}/nope", {"name": "x"}), 404)
    problem(t.post(f"{P}/nope/stages", {"slug": "x", "name": "X"}), 404)

    assert t.delete(f"{base}/won").status_code == 204
    got = t.pipeline(p["id"])
    assert slugs(got) == ["live-demo", "new", "lost", "parked"]
    assert_positions(got["stages"])
    problem(t.delete(f"{base}/won"), 404)


def test_last_open_stage_stays(t):
    p = t.create()
    base = f"{P}/{p['id']}/stages"
    doc = problem(t.delete(f"{base}/new"), 409)
    assert "last open stage" in doc["detail"]
    problem(t.patch(f"{base}/new", {"kind": "lost"}), 409)
    assert t.post(base, {"slug": "second", "name": "Second"}).status_code == 201
    assert t.patch(f"{base}/new", {"kind": "lost"}).status_code == 200
    problem(t.delete(f"{base}/second"), 409)


def test_reorder_stages_needs_every_stage_once(t):
    p = t.pipeline("research")
    ids = {s["slug"]: s["id"] for s in p["stages"]}
    want = ["lost", "won", "negotiation", "proposal", "qualified", "new"]
    r = t.put(f"{P}/research/stages/order",
              {"stages": [ids["lost"], "won", ids["negotiation"], "proposal", "qualified", "new"]})
    assert r.status_code == 200, r.text
    assert slugs(r.json()) == want and r.json()["id"] == p["id"]
    assert_positions(r.json()["stages"])
    assert slugs(t.pipeline("research")) == want

    def refused(stages, field, text):
        doc = problem(t.put(f"{P}/research/stages/order", {"stages": stages}), 400)
        msgs = [e["message"] for e in doc["errors"] if e["field"] == field]
        assert any(text in m for m in msgs), doc

    refused(want[:-1], "stages", "misses stage new")
    refused(want + ["demo"], "stages[6]", "is not a stage")
    refused(want + ["won"], "stages[6]", "again")
    refused([ids["won"]] + want, "stages[2]", "again")  # the same stage by id and by slug
    refused(want[:-1] + [7], "stages[5]", "must be a stage id or slug")
    doc = problem(t.put(f"{P}/research/stages/order", {"order": want}), 400)
    assert fields_of(doc) == {"order", "stages"}
    problem(t.put(f"{P}/research/stages/order", {"stages": "new"}), 400)
    assert slugs(t.pipeline("research")) == want
    problem(t.put(f"{P}/nope/stages/order", {"stages": []}), 404)


def test_stage_holding_a_deal_is_kept(t):
    p = t.create(stages=[{"slug": "a", "name": "A"}, {"slug": "b", "name": "B"},
                         {"slug": "won", "name": "Won", "kind": "won"},
                         {"slug": "lost", "name": "Lost", "kind": "lost"}])
    base = f"{P}/{p['id']}/stages"
    t.deal(p, stage_of(p, "b"))
    t.deal(p, stage_of(p, "won"), status="won")
    doc = problem(t.delete(f"{base}/b"), 409)
    assert "1 deal" in doc["detail"] and doc["deals"] == 1
    problem(t.delete(f"{base}/won"), 409)  # a closed deal holds its stage too
    doc = problem(t.patch(f"{base}/won", {"kind": "lost"}), 409)
    assert "kind" in doc["detail"]
    problem(t.patch(f"{base}/b", {"kind": "won"}), 409)
    # the rest of a stage may change while it holds deals, and kind to the same value
    assert t.patch(f"{base}/b", {"name": "Bee", "kind": "open"}).status_code == 200
    assert t.delete(f"{base}/a").status_code == 204
    assert slugs(t.pipeline(p["id"])) == ["b", "won", "lost"]


def test_pipeline_with_an_open_deal_is_kept_closed_deals_go_with_it(t):
    p = t.create()
    lead = t.lead()
    open_deal = t.deal(p, stage_of(p, "new"), lead=lead, value=500)
    won = t.deal(p, stage_of(p, "won"), status="won", value=900)
    lost = t.deal(p, stage_of(p, "lost"), status="lost")
    with t.db() as db:
        db.execute("UPDATE leads SET pipeline_id = ?, routing_status = 'routed' WHERE id = ?",
                   (p["id"], lead))
        db.execute("INSERT INTO deal_stage_history (id, tenant_id, deal_id, to_stage_id,"
                   " moved_at) VALUES (?, ?, ?, ?, 1)",
                   (str(uuid.uuid4()), t.id, won, stage_of(p, "won")["id"]))
        task = str(uuid.uuid4())
        db.execute("INSERT INTO tasks (id, tenant_id, lead_id, deal_id, title, created_at,"
                   " updated_at) VALUES (?, ?, ?, ?, 'Call', 1, 1)", (task, t.id, lead, won))
    doc = problem(t.delete(f"{P}/{p['slug']}"), 409)
    assert "1 open deal" in doc["detail"] and doc["open_deals"] == 1
    assert t.pipeline(p["id"])["id"] == p["id"]

    with t.db() as db:
        db.execute("UPDATE deals SET status = 'lost', closed_at = 2 WHERE id = ?", (open_deal,))
    assert t.delete(f"{P}/{p['slug']}").status_code == 204
    problem(t.get(f"{P}/{p['id']}"), 404)
    with t.db() as db:
        q = lambda sql, *a: db.execute(sql, a).fetchone()[0]
        assert q("SELECT COUNT(*) FROM deals WHERE id IN (?, ?, ?)", open_deal, won, lost) == 0
        assert q("SELECT COUNT(*) FROM deal_stage_history WHERE deal_id = ?", won) == 0
        assert q("SELECT deal_id FROM tasks WHERE id = ?", task) is None
        assert q("SELECT lead_id FROM tasks WHERE id = ?", task) == lead
        assert q("SELECT pipeline_id FROM leads WHERE id = ?", lead) is None
        assert q("SELECT COUNT(*) FROM pipeline_stages WHERE pipeline_id = ?", p["id"]) == 0
    assert t.get(f"/api/v1/leads/{lead}").status_code == 200  # the lead stays


def test_board_counts_sums_and_pages_per_stage(t):
    p = t.pipeline("b2b")
    new, demo = stage_of(p, "new"), stage_of(p, "demo")
    lead = t.lead(first_name="Ada", last_name="Board")
    in_new = [t.deal(p, new, value=100 * (i + 1), entered=10_000 + i,
                     lead=lead if i == 0 else None) for i in range(5)]
    t.deal(p, demo, value=7_000, currency="USD")
    t.deal(p, demo, value=1, status="lost")  # closed deals are not on the board
    t.deal(p, new, value=1, status="won")

    r = t.get(f"{P}/b2b/board", params={"limit": 2})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["id"] == p["id"] and b["slug"] == "b2b"
    assert b["count"] == 6 and b["value_cents"] == 1_500 + 7_000
    assert b["value_by_currency"] == {"EUR": 1_500, "USD": 7_000}
    assert slugs(b) == slugs(p)
    assert_positions(b["stages"])
    s_new = stage_of(b, "new")
    assert s_new["count"] == 5 and s_new["value_cents"] == 1_500 and s_new["kind"] == "open"
    assert [d["id"] for d in s_new["deals"]] == in_new[:2]  # oldest in the stage first
    assert s_new["next_cursor"]
    d = s_new["deals"][0]
    assert d["lead"] == {"id": lead, "email": d["lead"]["email"], "first_name": "Ada",
                         "last_name": "Board", "total_score": 0}
    assert d["lead_id"] == lead and d["value_cents"] == 100 and d["currency"] == "EUR"
    assert d["status"] == "open" and d["stage_id"] == new["id"] and d["assigned_to"] is None
    assert d["stage_entered_at"] == "1970-01-01T00:00:10.000Z" and d["expected_close_at"] is None
    s_demo = stage_of(b, "demo")
    assert s_demo["count"] == 1 and s_demo["value_cents"] == 7_000 and s_demo["next_cursor"] is None
    assert s_demo["value_by_currency"] == {"USD": 7_000}
    s_won = stage_of(b, "won")
    assert s_won["count"] == 0 and s_won["value_cents"] == 0 and s_won["deals"] == []

    # page through one stage (by slug, then by id)
    seen, cursor = [d["id"] for d in s_new["deals"]], s_new["next_cursor"]
    for ref in ("new", new["id"]):
        r = t.get(f"{P}/b2b/board", params={"stage": ref, "cursor": cursor, "limit": 2})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["stages"]) == 1 and page["stages"][0]["id"] == new["id"]
        assert page["count"] == 6 and page["stages"][0]["count"] == 5
        seen += [d["id"] for d in page["stages"][0]["deals"]]
        cursor = page["stages"][0]["next_cursor"]
    assert seen == in_new and cursor is None
    one = t.get(f"{P}/{p['id']}/board", params={"stage": "demo"}).json()
    assert [s["slug"] for s in one["stages"]] == ["demo"] and len(one["stages"][0]["deals"]) == 1

    problem(t.get(f"{P}/b2b/board", params={"stage": "nope"}), 404)
    problem(t.get(f"{P}/nope/board"), 404)
    no_stage = t.get(f"{P}/b2b/board", params={"cursor": s_new["next_cursor"]})
    assert "cursor" in fields_of(problem(no_stage, 400))
    assert "cursor" in fields_of(problem(
        t.get(f"{P}/b2b/board", params={"stage": "new", "cursor": "garbage"}), 400))
    assert "limit" in fields_of(problem(t.get(f"{P}/b2b/board", params={"limit": 501}), 400))


def test_empty_board(t):
    b = t.get(f"{P}/research/board").json()
    assert b["count"] == 0 and b["value_cents"] == 0 and b["value_by_currency"] == {}
    assert all(s["deals"] == [] and s["next_cursor"] is None and s["count"] == 0
               for s in b["stages"])


def test_another_tenant_sees_none_of_it(server, t):
    other = Tenant(server)
    p = t.create()
    for path in (f"{P}/{p['id']}", f"{P}/{p['slug']}", f"{P}/{p['id']}/board"):
        problem(other.get(path), 404)
    assert p["id"] not in [x["id"] for x in other.pipelines()]
    problem(other.patch(f"{P}/{p['id']}", {"name": "Mine"}), 404)
    problem(other.post(f"{P}/{p['id']}/stages", {"slug": "x", "name": "X"}), 404)
    problem(other.patch(f"{P}/{p['id']}/stages/new", {"name": "Mine"}), 404)
    problem(other.put(f"{P}/{p['id']}/stages/order", {"stages": ["new", "won", "lost"]}), 404)
    problem(other.delete(f"{P}/{p['id']}/stages/won"), 404)
    problem(other.delete(f"{P}/{p['id']}"), 404)
    # each tenant's default pipelines are its own: the same slug, other ids
    assert other.pipeline("b2b")["id"] != t.pipeline("b2b")["id"]
    assert t.pipeline(p["id"]) == p


def test_roles(t):
    p = t.pipeline("b2b")
    for role in ("viewer", "sales", "manager"):
        assert t.get(P, role=role).status_code == 200
        assert t.get(f"{P}/b2b", role=role).status_code == 200
        assert t.get(f"{P}/b2b/board", role=role).status_code == 200
    for role in ("viewer", "sales", "ingest"):
        problem(t.post(P, {"slug": "z", "name": "Z", "owner_role": "bdr"}, role=role), 403)
        problem(t.patch(f"{P}/b2b", {"name": "Z"}, role=role), 403)
        problem(t.delete(f"{P}/b2b", role=role), 403)
        problem(t.post(f"{P}/b2b/stages", {"slug": "z", "name": "Z"}, role=role), 403)
        problem(t.patch(f"{P}/b2b/stages/new", {"name": "Z"}, role=role), 403)
        problem(t.put(f"{P}/b2b/stages/order", {"stages": slugs(p)}, role=role), 403)
        problem(t.delete(f"{P}/b2b/stages/demo", role=role), 403)
    problem(t.get(P, role="ingest"), 403)
    assert t.pipeline("b2b") == p
    r = t.patch(f"{P}/b2b", {"name": "B2B sales"}, role="manager")
    assert r.status_code == 200 and r.json()["name"] == "B2B sales"
