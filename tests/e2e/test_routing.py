"""The route stage, routing by hand, the routing setting and owner assignment. Each test works
in a tenant of its own (seeded pipelines and team, no scoring or intent rules) and writes the
rules it needs: every event scores 10 points; `b2b_signal` and `research_signal` add 20 points
of intent b2b or research."""
import sqlite3
import time

import pytest

from conftest import Tenant, fields_of, problem, uniq


class Sales(Tenant):
    def __init__(self, server):
        super().__init__(server)
        self.rule(event_type="*", points=10, category="engagement")
        self.intent_rule(event_type="b2b_signal", intent="b2b", points=20)
        self.intent_rule(event_type="research_signal", intent="research", points=20)
        self.team = {m["email"]: m for m in self.get("/api/v1/team?limit=500").json()["items"]} \
            if self.get("/api/v1/team").status_code == 200 else {}

    def db(self):
        return sqlite3.connect(self.s.db, timeout=10)

    def tenant_id(self):
        with self.db() as db:
            return db.execute("SELECT id FROM tenants WHERE slug = ?", (self.slug,)).fetchone()[0]

    def deals_of(self, lead_id):
        with self.db() as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(
                "SELECT d.*, p.slug AS pipeline, s.slug AS stage FROM deals d"
                " JOIN pipelines p ON p.id = d.pipeline_id JOIN pipeline_stages s"
                " ON s.id = d.stage_id WHERE d.lead_id = ? ORDER BY d.id", (lead_id,))]

    def member(self, member_id):
        with self.db() as db:
            db.row_factory = sqlite3.Row
            return dict(db.execute("SELECT * FROM team_members WHERE id = ?",
                                   (member_id,)).fetchone())

    def members(self):
        with self.db() as db:
            db.row_factory = sqlite3.Row
            return {r["email"]: dict(r) for r in db.execute(
                "SELECT * FROM team_members WHERE tenant_id = ?", (self.tenant_id(),))}

    def new_lead(self, **fields):
        body = {"email": uniq("lead") + "@corp.example", **fields}
        r = self.post("/api/v1/leads", body)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def route(self, lead_id, pipeline, owner=None):
        body = {"pipeline": pipeline}
        if owner:
            body["owner"] = owner
        r = self.post(f"/api/v1/leads/{lead_id}/route", body)
        assert r.status_code == 200, r.text
        return r.json()


AMBIGUOUS = ["b2b_signal", "research_signal", "b2b_signal", "research_signal", "page_view",
             "page_view"]


@pytest.fixture
def sales(server):
    return Sales(server)


def test_lead_crossing_both_thresholds_is_routed_with_deal_and_owner(sales):
    email = uniq("ada") + "@corp.example"
    ev = sales.send("b2b_signal", email, region="EU")
    lead_id = ev["lead_id"]
    assert "route" not in ev["result"]  # 10 points: below every threshold
    for _ in range(2):
        ev = sales.send("b2b_signal", email)
    assert sales.lead(lead_id)["routing_status"] == "unrouted"
    ev = sales.send("b2b_signal", email)  # 40 points, confidence 100
    assert ev["result"]["route"]["decision"] == "auto"
    lead = sales.lead(lead_id)
    assert lead["routing_status"] == "routed" and lead["routed_at"]
    deals = sales.deals_of(lead_id)
    assert len(deals) == 1
    deal = deals[0]
    assert deal["pipeline"] == "b2b" and deal["stage"] == "new" and deal["status"] == "open"
    assert lead["pipeline_id"] == deal["pipeline_id"]
    owner = sales.member(deal["assigned_to"])
    assert owner["role"] == "account_executive" and owner["region"] == "EU"  # the lead's region
    assert owner["current_leads"] == 1
    routed = sales.domain_events("lead.routed", lead_id)
    created = sales.domain_events("deal.created", lead_id)
    assert len(routed) == 1 and len(created) == 1
    # routed leads are not routed again
    sales.send("b2b_signal", email)
    assert len(sales.deals_of(lead_id)) == 1
    assert len(sales.domain_events("lead.routed", lead_id)) == 1


def test_ambiguous_lead_goes_to_manual_review_with_exactly_one_conflict(sales):
    email = uniq("amb") + "@corp.example"
    lead_id = None
    for kind in AMBIGUOUS:  # 60 points; b2b 40 and research 40 of intent: a tie
        ev = sales.send(kind, email)
        lead_id = ev["lead_id"]
    assert ev["result"]["route"] == {"decision": "manual_review", "reason": "ambiguous"}
    for i in range(3):
        sales.send("b2b_signal", email)
    lead = sales.lead(lead_id)
    assert lead["routing_status"] == "manual_review" and lead["pipeline_id"] is None
    conflicts = sales.domain_events("lead.routing_conflict", lead_id)
    assert len(conflicts) == 1
    data = conflicts[0]["metadata"]
    assert data["reason"] == "ambiguous" and data["score"] == 60
    assert data["primary_intent"] is None
    cands = {c["intent"]: c for c in data["candidates"]}
    assert set(cands) == {"b2b", "research"}
    assert cands["b2b"]["pipeline"] == "b2b" and cands["research"]["pipeline"] == "research"
    assert sales.deals_of(lead_id) == []


def test_low_confidence_lead_goes_to_manual_review(sales):
    # 60 points, one weak signal of 20: confidence round(100 * 20 / 30) = 67 — raise the bar
    r = sales.put("/api/v1/settings/routing", {"min_confidence": 80})
    assert r.status_code == 200 and r.json()["min_confidence"] == 80
    email = uniq("low") + "@corp.example"
    ev = sales.send("b2b_signal", email)
    for _ in range(5):
        ev = sales.send("page_view", email)
    assert ev["result"]["route"] == {"decision": "manual_review", "reason": "low_confidence"}


def test_lead_without_intent_goes_to_discovery(sales):
    email = uniq("disc") + "@corp.example"
    for _ in range(5):
        ev = sales.send("page_view", email)
    assert "route" not in ev["result"]  # 50 < discovery_min_score 60
    ev = sales.send("page_view", email)
    assert ev["result"]["route"]["decision"] == "discovery"
    lead = sales.lead(ev["lead_id"])
    assert lead["routing_status"] == "routed"
    (deal,) = sales.deals_of(ev["lead_id"])
    assert deal["pipeline"] == "discovery" and deal["stage"] == "new"
    assert sales.member(deal["assigned_to"])["role"] == "bdr"


def test_score_below_every_threshold_stays_in_pool(sales):
    email = uniq("pool") + "@corp.example"
    ev = sales.send("b2b_signal", email)
    ev = sales.send("b2b_signal", email)  # 20 points, confident b2b
    assert "route" not in ev["result"]
    assert sales.lead(ev["lead_id"])["routing_status"] == "unrouted"


def test_manual_routing_any_status_records_who_and_never_doubles_the_deal(sales):
    email = uniq("man") + "@corp.example"
    for kind in AMBIGUOUS:
        ev = sales.send(kind, email)
    lead_id = ev["lead_id"]
    assert sales.lead(lead_id)["routing_status"] == "manual_review"
    rita = sales.members()["rita.research@example.com"]
    out = sales.route(lead_id, "research", owner=rita["id"])
    assert out["lead"]["routing_status"] == "routed"
    assert out["deal"]["assigned_to"] == rita["id"] and out["deal"]["pipeline"] == "research"
    assert sales.member(rita["id"])["current_leads"] == 1
    (routed,) = sales.domain_events("lead.routed", lead_id)
    assert routed["metadata"]["kind"] == "manual" and routed["metadata"]["by"]
    assert routed["metadata"]["previous_status"] == "manual_review"
    # again into the same pipeline: the open deal is kept, no second one
    sales.route(lead_id, "research")
    assert len(sales.deals_of(lead_id)) == 1
    # a routed lead can be routed elsewhere by hand; the other deal stays
    out = sales.route(lead_id, "b2b")
    assert {d["pipeline"] for d in sales.deals_of(lead_id)} == {"research", "b2b"}
    with sales.db() as db:
        kinds = [r[0] for r in db.execute(
            "SELECT kind FROM routing_log WHERE lead_id = ? ORDER BY created_at, id", (lead_id,))]
    assert kinds == ["conflict", "manual", "manual", "manual"]


def test_manual_routing_bad_input(sales):
    lead_id = sales.new_lead()
    problem(sales.post(f"/api/v1/leads/{lead_id}/route", {}), 400)
    r = sales.post(f"/api/v1/leads/{lead_id}/route", {"pipeline": "nope"})
    assert "pipeline" in fields_of(problem(r, 400))
    r = sales.post(f"/api/v1/leads/{lead_id}/route", {"pipeline": "b2b", "color": "red"})
    assert "color" in fields_of(problem(r, 400))
    problem(sales.post("/api/v1/leads/00000000-0000-7000-8000-000000000000/route",
                       {"pipeline": "b2b"}), 404)
    r = sales.post(f"/api/v1/leads/{lead_id}/route", {"pipeline": "b2b", "owner": "nobody"})
    problem(r, 404)
    assert sales.lead(lead_id)["routing_status"] == "unrouted"  # nothing changed
    assert sales.deals_of(lead_id) == []
    r = sales.s.post(f"/api/v1/leads/{lead_id}/route", {"pipeline": "b2b"}, role="viewer",
                     tenant=sales.slug)
    problem(r, 403)


def test_routing_setting_validation_and_effect(sales):
    got = sales.get("/api/v1/settings/routing").json()
    assert got["min_score"] == 40 and got["min_confidence"] == 60
    assert got["conflict_min_score"] == 60 and got["ambiguity_margin"] == 15
    assert got["discovery_min_score"] == 60 and got["assignment_strategy"] == "round_robin"
    assert got["intent_pipelines"]["b2b"] == "b2b"
    bad = sales.put("/api/v1/settings/routing",
                    {"min_confidence": 101, "assignment_strategy": "lottery", "colour": 1,
                     "intent_pipelines": {"b2b": "nope"}, "min_score": "40"})
    f = fields_of(problem(bad, 400))
    assert {"min_confidence", "assignment_strategy", "colour", "intent_pipelines.b2b",
            "min_score"} <= set(f)
    assert sales.get("/api/v1/settings/routing").json() == got  # nothing changed
    # map intent b2b to the research pipeline and lower the bar: the next event routes there
    r = sales.put("/api/v1/settings/routing", {"min_score": 20,
                                               "intent_pipelines": {"b2b": "research"}})
    assert r.status_code == 200 and r.json()["intent_pipelines"] == {"b2b": "research"}
    email = uniq("map") + "@corp.example"
    sales.send("b2b_signal", email)
    ev = sales.send("b2b_signal", email)
    assert ev["result"]["route"]["decision"] == "auto"
    assert sales.deals_of(ev["lead_id"])[0]["pipeline"] == "research"
    problem(sales.s.put("/api/v1/settings/routing", {"min_score": 1}, role="sales",
                        tenant=sales.slug), 403)


def _route_many(sales, n, pipeline="b2b", **lead):
    owners = []
    for _ in range(n):
        out = sales.route(sales.new_lead(**lead), pipeline)
        owners.append(out["deal"]["assigned_to"])
    return owners


def _open_deals_by_owner(sales):
    with sales.db() as db:
        return dict(db.execute("SELECT assigned_to, count(*) FROM deals WHERE tenant_id = ?"
                               " AND status = 'open' AND assigned_to IS NOT NULL"
                               " GROUP BY assigned_to", (sales.tenant_id(),)).fetchall())


def _assert_counts_exact(sales):
    counts = _open_deals_by_owner(sales)
    for m in sales.members().values():
        assert m["current_leads"] == counts.get(m["id"], 0), m["email"]


def test_round_robin_is_fair_when_a_member_joins_halfway(sales):
    first = _route_many(sales, 50)
    ae = [m for m in sales.members().values() if m["role"] == "account_executive"]
    assert len(ae) == 2
    assert sorted(first.count(m["id"]) for m in ae) == [25, 25]
    assert all(first[i] != first[i + 1] for i in range(49))  # a strict rotation
    r = sales.post("/api/v1/team", {"email": uniq("new") + "@example.com", "name": "New AE",
                                    "role": "account_executive", "max_leads": 60})
    assert r.status_code == 201, r.text
    joined = r.json()["id"]
    second = _route_many(sales, 50)
    counts = sorted(second.count(m) for m in {*second})
    assert len(counts) == 3 and counts[-1] - counts[0] <= 1, counts
    assert second[0] == joined  # never assigned: first in line
    _assert_counts_exact(sales)


def test_capacity_based_skips_full_members(sales):
    assert sales.put("/api/v1/settings/routing",
                     {"assignment_strategy": "capacity_based"}).status_code == 200
    m = sales.members()
    anna, alex = m["anna.accounts@example.com"], m["alex.accounts@example.com"]
    assert sales.patch(f"/api/v1/team/{anna['id']}", {"max_leads": 2}).status_code == 200
    assert sales.patch(f"/api/v1/team/{alex['id']}", {"max_leads": 10}).status_code == 200
    owners = _route_many(sales, 8)
    # the lowest load ratio first: anna 0/2, alex 0/10 … anna fills at 2 and is skipped after
    assert owners.count(anna["id"]) == 2 and owners.count(alex["id"]) == 6
    assert sales.member(anna["id"])["current_leads"] == 2
    _assert_counts_exact(sales)


def test_away_and_inactive_members_are_skipped_and_nobody_eligible_needs_a_person(sales):
    m = sales.members()
    anna, alex = m["anna.accounts@example.com"], m["alex.accounts@example.com"]
    future = "2999-01-01T00:00:00Z"
    assert sales.patch(f"/api/v1/team/{alex['id']}", {"away_until": future}).status_code == 200
    owners = _route_many(sales, 4)
    assert owners == [anna["id"]] * 4
    assert sales.patch(f"/api/v1/team/{anna['id']}", {"is_active": False}).status_code == 200
    lead_id = sales.new_lead()
    out = sales.route(lead_id, "b2b")
    deal = out["deal"]
    assert deal["assigned_to"] is None
    assert [t["title"] for t in deal["tasks"]] == ["Assign an owner"]
    assert deal["tasks"][0]["task_type"] == "assign_owner"
    with sales.db() as db:
        (payload,) = db.execute("SELECT payload FROM deliveries WHERE tenant_id = ?"
                                " AND kind = 'slack'", (sales.tenant_id(),)).fetchone()
    assert "needs an owner" in payload and "no eligible team member" in payload
    assert len(sales.domain_events("task.created", lead_id)) == 1
    _assert_counts_exact(sales)


def test_manual_strategy_leaves_the_deal_unassigned_with_a_task(sales):
    assert sales.put("/api/v1/settings/routing",
                     {"assignment_strategy": "manual"}).status_code == 200
    out = sales.route(sales.new_lead(), "co-creation")
    assert out["deal"]["assigned_to"] is None
    assert [t["title"] for t in out["deal"]["tasks"]] == ["Assign an owner"]
    with sales.db() as db:
        (payload,) = db.execute("SELECT payload FROM deliveries WHERE tenant_id = ?"
                                " AND kind = 'slack'", (sales.tenant_id(),)).fetchone()
    assert "assignment is manual" in payload


def test_region_match_is_preferred_then_anyone(sales):
    m = sales.members()
    owners = _route_many(sales, 3, region="dach")
    assert owners == [m["anna.accounts@example.com"]["id"]] * 3  # case-insensitive match
    owners = _route_many(sales, 2, region="APAC")  # nobody there: round robin over all
    assert set(owners) == {m["anna.accounts@example.com"]["id"],
                           m["alex.accounts@example.com"]["id"]}


def test_another_tenant_sees_none_of_it(sales, server):
    lead_id = sales.new_lead()
    out = sales.route(lead_id, "b2b")
    other = Tenant(server)
    problem(other.post(f"/api/v1/leads/{lead_id}/route", {"pipeline": "b2b"}), 404)
    assert other.get(f"/api/v1/deals/{out['deal']['id']}").status_code == 404
    assert other.get("/api/v1/settings/routing").json()["intent_pipelines"]["b2b"] == "b2b"
    # a pipeline id of another tenant is not found either
    r = other.post(f"/api/v1/leads/{other_lead(other)}/route",
                   {"pipeline": out["deal"]["pipeline_id"]})
    assert "pipeline" in fields_of(problem(r, 400))


def other_lead(t):
    r = t.post("/api/v1/leads", {"email": uniq("o") + "@corp.example"})
    assert r.status_code == 201
    return r.json()["id"]


def test_renaming_or_deleting_a_pipeline_keeps_the_intent_map_true(sales):
    r = sales.patch("/api/v1/pipelines/b2b", {"slug": "b2b-sales"})
    assert r.status_code == 200, r.text
    assert sales.get("/api/v1/settings/routing").json()["intent_pipelines"]["b2b"] == "b2b-sales"
    # the router follows at once (the rename bumped the rule version)
    email = uniq("ren") + "@corp.example"
    for _ in range(4):
        ev = sales.send("b2b_signal", email)
    assert ev["result"]["route"]["pipeline"] == "b2b-sales"
    deal_id = ev["result"]["route"]["deal_id"]
    assert sales.post(f"/api/v1/deals/{deal_id}/close", {"outcome": "lost"}).status_code == 200
    assert sales.delete("/api/v1/pipelines/b2b-sales").status_code == 204
    assert "b2b" not in sales.get("/api/v1/settings/routing").json()["intent_pipelines"]


def test_clear_intent_below_min_score_waits_in_the_pool_even_above_conflict_score(sales):
    assert sales.put("/api/v1/settings/routing",
                     {"min_score": 80, "conflict_min_score": 60}).status_code == 200
    email = uniq("wait") + "@corp.example"
    for _ in range(6):  # 60 points, b2b confidence 100: clear, but not enough score
        ev = sales.send("b2b_signal", email)
    assert "route" not in ev["result"]
    assert sales.lead(ev["lead_id"])["routing_status"] == "unrouted"
    for _ in range(2):
        ev = sales.send("b2b_signal", email)
    assert ev["result"]["route"]["decision"] == "auto"
    assert sales.domain_events("lead.routing_conflict", ev["lead_id"]) == []


def test_a_repeated_request_id_loses_no_routing_event(sales):
    lead_id = sales.new_lead()
    for pipeline in ("b2b", "research"):
        r = sales.s.post(f"/api/v1/leads/{lead_id}/route", {"pipeline": pipeline},
                         tenant=sales.slug, headers={"X-Request-Id": "fixed-req-1"})
        assert r.status_code == 200, r.text
    assert len(sales.domain_events("lead.routed", lead_id)) == 2


def test_deleting_a_lead_takes_its_routing_and_deal_history(sales):
    lead_id = sales.new_lead()
    deal = sales.route(lead_id, "b2b")["deal"]
    assert sales.post(f"/api/v1/deals/{deal['id']}/move", {"stage": "qualified"}).status_code == 200
    assert sales.delete(f"/api/v1/leads/{lead_id}").status_code == 204
    with sales.db() as db:
        assert db.execute("SELECT count(*) FROM deal_stage_history WHERE deal_id = ?",
                          (deal["id"],)).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM routing_log WHERE lead_id = ?",
                          (lead_id,)).fetchone()[0] == 0
    _assert_counts_exact(sales)
