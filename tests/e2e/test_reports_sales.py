"""The sales reports: the pipeline funnel (deals entering each stage, conversion to the next,
median time in stage, won, lost and open value) and routing effectiveness (decisions per
pipeline and kind, time to route, outcomes, conflicts, manual overrides). The data is built
through the API with the test clock moved between steps, so every time in stage is known.
Each test works in a tenant of its own (seeded pipelines and team, only the rules it writes)."""
import pytest

from conftest import Server, Tenant, fields_of, problem, uniq

HOUR = 3600 * 1000
DAY = 24 * HOUR


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("rep"), LEADFLOW_TEST_NOW="2026-03-01T00:00:00Z").start()
    yield s
    rc = s.stop()
    assert rc == 0, "leadflow did not exit cleanly:\n" + s.read_log()[-4000:]


def set_clock(server, now):
    """Moves the server's clock; tokens are minted again on the new clock (they expire)."""
    r = server.put("/api/v1/test/clock", {"now": now})
    assert r.status_code == 200, r.text
    server.env["LEADFLOW_TEST_NOW"] = now
    server._tokens.clear()


def at(day, hour=0):
    """A time of the funnel test's week: 2026-03-02 09:00 UTC plus days and hours."""
    return f"2026-03-{2 + day:02d}T{9 + hour:02d}:00:00Z"


class Sales(Tenant):
    def new_lead(self):
        r = self.post("/api/v1/leads", {"email": uniq("lead") + "@corp.example"})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def deal(self, pipeline, value):
        r = self.post("/api/v1/deals", {"lead_id": self.new_lead(), "pipeline": pipeline,
                                        "value_cents": value})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def act(self, deal_id, action, body=None):
        r = self.post(f"/api/v1/deals/{deal_id}/{action}", body)
        assert r.status_code == 200, r.text
        return r.json()

    def funnel(self, **params):
        r = self.get("/api/v1/reports/funnel", params=params)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["truncated"] is False
        return doc

    def routing(self, **params):
        r = self.get("/api/v1/reports/routing", params=params)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["truncated"] is False
        return doc


def stages(doc):
    return {s["slug"]: s for s in doc["stages"]}


def near(ms, expected):
    """The server's clock runs on from where a test sets it, so a step taken right after a
    clock move happens a few milliseconds later: durations are compared within 10 s."""
    if expected is None:
        return ms is None
    return ms is not None and abs(ms - expected) < 10_000


def row(s, entered, conversion, median, days):
    assert (s["entered"], s["conversion_to_next"], s["median_time_in_stage_days"]) == (
        entered, conversion, days), s
    assert near(s["median_time_in_stage_ms"], median), s


@pytest.fixture(scope="module")
def funnel_data(server):
    """Four deals in Research, moved through a week (days from 2026-03-02 09:00):
        D1 1000: new@0, qualified@1, proposal@3, won@4
        D2 2000: new@0, qualified@2, lost@5
        D3  500: new@1, qualified@6
        D4  700: new@0, lost@2, new@3 (reopened)
    and one deal in B2B that must not show in Research."""
    set_clock(server, at(0))
    t = Sales(server)
    d1, d2, d4 = t.deal("research", 1000), t.deal("research", 2000), t.deal("research", 700)
    t.deal("b2b", 99999)
    set_clock(server, at(1))
    d3 = t.deal("research", 500)
    t.act(d1, "move", {"stage": "qualified"})
    set_clock(server, at(2))
    t.act(d2, "move", {"stage": "qualified"})
    t.act(d4, "close", {"outcome": "lost", "reason": "no budget"})
    set_clock(server, at(3))
    t.act(d1, "move", {"stage": "proposal"})
    assert t.act(d4, "reopen")["status"] == "open"
    set_clock(server, at(4))
    t.act(d1, "close", {"outcome": "won"})
    set_clock(server, at(5))
    t.act(d2, "move", {"stage": "lost"})  # a move into a lost stage closes the deal
    set_clock(server, at(6))
    t.act(d3, "move", {"stage": "qualified"})
    return t


def test_funnel_over_all_time(funnel_data):
    t = funnel_data
    doc = t.funnel(pipeline="research")
    assert doc["pipeline"]["slug"] == "research" and doc["pipeline"]["name"] == "Research"
    assert doc["since"] is None and doc["until"] is None
    assert [s["slug"] for s in doc["stages"]] == ["new", "qualified", "proposal", "negotiation",
                                                   "won", "lost"]
    assert [s["kind"] for s in doc["stages"]] == ["open"] * 4 + ["won", "lost"]
    s = stages(doc)
    # new: all four entered; D4 never got further (lost, then back to new); stays 1, 2, 2
    # (D4 until it was lost) and 5 days; D4's second stay is still going on
    row(s["new"], 4, 0.75, 2 * DAY, 2.0)
    # qualified: D1 went on, D2 was lost, D3 is still there; stays 2 and 3 days
    row(s["qualified"], 3, 0.3333, 2.5 * DAY, 2.5)
    # proposal: D1 skipped negotiation and won — a won stage is a conversion from any stage
    row(s["proposal"], 1, 1.0, DAY, 1.0)
    row(s["negotiation"], 0, None, None, None)
    # won and lost have no conversion; D1 is still in won; D4 left lost after a day (reopen)
    row(s["won"], 1, None, None, None)
    row(s["lost"], 2, None, DAY, 1.0)
    assert doc["won"] == {"count": 1, "value_cents": 1000}
    assert doc["lost"] == {"count": 1, "value_cents": 2000}  # D4 was reopened
    assert doc["open"] == {"count": 2, "value_cents": 1200}  # D3 and D4; B2B not counted
    # the pipeline by id gives the same report
    by_id = t.funnel(pipeline=doc["pipeline"]["id"])
    assert by_id["stages"] == doc["stages"] and by_id["pipeline"] == doc["pipeline"]


def test_funnel_window(funnel_data):
    t = funnel_data
    doc = t.funnel(pipeline="research", since=at(1), until=at(4))
    assert doc["since"] == "2026-03-03T09:00:00.000Z"
    assert doc["until"] == "2026-03-06T09:00:00.000Z"
    s = stages(doc)
    # entries in [day 1, day 4): D3 (went on later, outside the window: still counts) and D4's
    # re-entry at day 3 (nothing after it); D3's stay began in the window and lasted 5 days
    row(s["new"], 2, 0.5, 5 * DAY, 5.0)
    row(s["qualified"], 2, 0.5, 2.5 * DAY, 2.5)
    row(s["proposal"], 1, 1.0, DAY, 1.0)
    row(s["won"], 0, None, None, None)  # until is exclusive: D1 won at day 4
    row(s["lost"], 1, None, DAY, 1.0)
    # closed in the window: none; open is as of now
    assert doc["won"] == {"count": 0, "value_cents": 0}
    assert doc["lost"] == {"count": 0, "value_cents": 0}
    assert doc["open"] == {"count": 2, "value_cents": 1200}
    late = t.funnel(pipeline="research", since=at(4))
    assert late["won"] == {"count": 1, "value_cents": 1000}
    assert late["lost"] == {"count": 1, "value_cents": 2000}
    assert stages(late)["new"]["entered"] == 0
    assert stages(late)["qualified"]["entered"] == 1  # D3 at day 6
    # an empty window
    empty = t.funnel(pipeline="research", since=at(2), until=at(2))
    assert all(s["entered"] == 0 and s["median_time_in_stage_ms"] is None
               for s in empty["stages"])


def test_funnel_close_without_a_stage_of_that_kind_ends_the_stay_at_closed_at(server):
    set_clock(server, "2026-03-20T08:00:00Z")
    t = Sales(server)
    r = t.post("/api/v1/pipelines", {
        "slug": "mini", "name": "Mini", "owner_role": "bdr",
        "stages": [{"slug": "a", "name": "A", "kind": "open"},
                   {"slug": "b", "name": "B", "kind": "open"}]})
    assert r.status_code == 201, r.text
    d1, d2 = t.deal("mini", 100), t.deal("mini", 300)
    set_clock(server, "2026-03-20T15:00:00Z")
    t.act(d1, "close", {"outcome": "won"})  # no won stage: no history row
    t.act(d2, "move", {"stage": "b"})
    set_clock(server, "2026-03-21T08:00:00Z")
    t.act(d2, "close", {"outcome": "lost"})
    s = stages(t.funnel(pipeline="mini"))
    # a: two stays of 7 hours (one ended by the close); only D2 entered b, the last open stage,
    # whose "next" is a won stage: there is none; D2 stayed in b 17 hours, until it was lost
    row(s["a"], 2, 0.5, 7 * HOUR, 0.3)
    row(s["b"], 1, 0.0, 17 * HOUR, 0.7)
    doc = t.funnel(pipeline="mini")
    assert doc["won"] == {"count": 1, "value_cents": 100}
    assert doc["lost"] == {"count": 1, "value_cents": 300}
    assert doc["open"] == {"count": 0, "value_cents": 0}


def test_funnel_bad_input_and_other_tenants(funnel_data, server):
    t = funnel_data
    assert "pipeline" in fields_of(problem(t.get("/api/v1/reports/funnel"), 400))
    assert "pipeline" in fields_of(problem(t.get("/api/v1/reports/funnel?pipeline="), 400))
    problem(t.get("/api/v1/reports/funnel", params={"pipeline": "nope"}), 404)
    doc = problem(t.get("/api/v1/reports/funnel",
                        params={"pipeline": "research", "since": "yesterday"}), 400)
    assert fields_of(doc) == {"since"}
    doc = problem(t.get("/api/v1/reports/funnel",
                        params={"pipeline": "research", "until": "2026-13-01T00:00:00Z"}), 400)
    assert fields_of(doc) == {"until"}
    doc = problem(t.get("/api/v1/reports/funnel",
                        params={"pipeline": "research", "since": at(3), "until": at(1)}), 400)
    assert fields_of(doc) == {"until"}
    # every read role; not ingest
    for role in ("viewer", "sales", "manager"):
        r = server.get("/api/v1/reports/funnel?pipeline=research", role=role, tenant=t.slug)
        assert r.status_code == 200, r.text
    problem(server.get("/api/v1/reports/funnel?pipeline=research", role="ingest",
                       tenant=t.slug), 403)
    # another tenant: its own Research pipeline, with nothing in it; ours is not found
    other = Sales(server)
    doc = other.funnel(pipeline="research")
    assert all(s["entered"] == 0 and s["conversion_to_next"] is None
               and s["median_time_in_stage_ms"] is None for s in doc["stages"])
    assert doc["won"] == doc["lost"] == doc["open"] == {"count": 0, "value_cents": 0}
    ours = t.funnel(pipeline="research")["pipeline"]["id"]
    assert doc["pipeline"]["id"] != ours
    problem(other.get("/api/v1/reports/funnel", params={"pipeline": ours}), 404)
    # the older reports still answer
    assert t.get("/api/v1/reports/score-tiers").status_code == 200
    assert t.get("/api/v1/reports/intents").status_code == 200


# ---- routing

T0 = "2026-04-06T08:00:00Z"


def rt(hours):
    """T0 plus hours (< 24 * 20)."""
    day, hour = divmod(hours, 24)
    return f"2026-04-{6 + day:02d}T{8 + hour:02d}:00:00Z" if hour < 16 else \
        f"2026-04-{7 + day:02d}T{hour - 16:02d}:00:00Z"


@pytest.fixture(scope="module")
def routing_data(server):
    """Rules: page_view 10 points; download 50 points and 30 of intent research; webinar 0
    points and 30 of intent co_creation; demo_request 70 points, no intent. Default routing
    (min_score 40, min_confidence 60, conflict_min_score 60, margin 15, discovery 60).
        T0:     every lead's first event (page_view; C and D also a webinar)
        T0+2h:  A downloads: 60 points, research 100% -> auto to research (2 h after T0)
        T0+4h:  B asks for a demo: 80 points, no intent -> discovery (4 h)
        T0+5h:  C and D download: 60 points, research 50 / co_creation 50 -> conflicts
        T0+6h:  A2 downloads -> auto to research (6 h)
        T0+24h: by hand: C to b2b (from review), E (new, in the pool) to co-creation, A to b2b
                (re-routed)
        T0+48h: A's research deal won, B's discovery deal lost, C's b2b deal won, A's b2b deal
                lost"""
    set_clock(server, rt(0))
    t = Sales(server)
    t.rule(event_type="page_view", points=10)
    t.rule(event_type="download", points=50)
    t.rule(event_type="demo_request", points=70)
    t.intent_rule(event_type="download", intent="research", points=30)
    t.intent_rule(event_type="webinar", intent="co_creation", points=30)
    mail = {k: uniq(k) + "@corp.example" for k in ("a", "a2", "b", "c", "d")}
    lead = {}
    for k, email in mail.items():
        lead[k] = t.send("page_view", email)["lead_id"]
    t.send("webinar", mail["c"])
    t.send("webinar", mail["d"])
    set_clock(server, rt(2))
    assert t.send("download", mail["a"])["result"]["route"]["decision"] == "auto"
    set_clock(server, rt(4))
    assert t.send("demo_request", mail["b"])["result"]["route"]["decision"] == "discovery"
    set_clock(server, rt(5))
    for k in ("c", "d"):
        assert t.send("download", mail[k])["result"]["route"] == {
            "decision": "manual_review", "reason": "ambiguous"}
    set_clock(server, rt(6))
    assert t.send("download", mail["a2"])["result"]["route"]["decision"] == "auto"
    set_clock(server, rt(24))
    deals = {}
    for k, pipeline in (("c", "b2b"), ("e", "co-creation"), ("a", "b2b")):
        lead_id = lead.get(k) or t.new_lead()
        r = t.post(f"/api/v1/leads/{lead_id}/route", {"pipeline": pipeline})
        assert r.status_code == 200, r.text
        deals[k + ":" + pipeline] = r.json()["deal"]["id"]
    set_clock(server, rt(48))
    a_research = t.get("/api/v1/deals", params={"pipeline": "research",
                                                "lead": lead["a"]}).json()["items"]
    b_discovery = t.get("/api/v1/deals", params={"pipeline": "discovery"}).json()["items"]
    assert len(a_research) == 1 and len(b_discovery) == 1, (a_research, b_discovery)
    t.act(a_research[0]["id"], "close", {"outcome": "won"})
    t.act(b_discovery[0]["id"], "close", {"outcome": "lost"})
    t.act(deals["c:b2b"], "close", {"outcome": "won"})
    t.act(deals["a:b2b"], "close", {"outcome": "lost"})
    return t


def by_slug(doc):
    return {p["pipeline"]: p for p in doc["pipelines"]}


def test_routing_over_all_time(routing_data):
    doc = routing_data.routing()
    assert doc["since"] is None and doc["until"] is None
    # every pipeline of the tenant, in list order, routed or not
    assert [p["pipeline"] for p in doc["pipelines"]] == ["research", "b2b", "co-creation",
                                                         "discovery"]
    p = by_slug(doc)
    assert {k: p["research"][k] for k in ("routed", "auto", "discovery", "manual")} == {
        "routed": 2, "auto": 2, "discovery": 0, "manual": 0}
    assert near(p["research"]["median_time_to_route_ms"], 4 * HOUR)  # 2 h and 6 h
    assert (p["research"]["won"], p["research"]["lost"], p["research"]["win_rate"]) == (1, 0, 1.0)
    assert (p["discovery"]["routed"], p["discovery"]["discovery"]) == (1, 1)
    assert near(p["discovery"]["median_time_to_route_ms"], 4 * HOUR)
    assert (p["discovery"]["won"], p["discovery"]["lost"], p["discovery"]["win_rate"]) == (0, 1, 0.0)
    # by hand only: no time to route
    assert (p["b2b"]["routed"], p["b2b"]["manual"], p["b2b"]["auto"]) == (2, 2, 0)
    assert p["b2b"]["median_time_to_route_ms"] is None
    assert (p["b2b"]["won"], p["b2b"]["lost"], p["b2b"]["win_rate"]) == (1, 1, 0.5)
    assert (p["co-creation"]["routed"], p["co-creation"]["manual"]) == (1, 1)
    assert (p["co-creation"]["won"], p["co-creation"]["lost"]) == (0, 0)
    assert p["co-creation"]["win_rate"] is None  # its deal is still open
    assert all(x["pipeline_id"] for x in doc["pipelines"])
    assert doc["conflicts"] == {"raised": 2, "resolved_manually": 1,
                                "resolved_by_pipeline": {"b2b": 1}, "open": 1}
    assert doc["manual_overrides"] == {"total": 3, "rerouted": 1, "from_review": 1,
                                       "from_pool": 1}
    assert doc["total_routed"] == 6


def test_routing_window(routing_data):
    t = routing_data
    early = t.routing(until=rt(24))  # the router's decisions only
    assert early["until"] == "2026-04-07T08:00:00.000Z"
    p = by_slug(early)
    assert (p["research"]["auto"], p["discovery"]["discovery"], p["b2b"]["manual"]) == (2, 1, 0)
    assert early["total_routed"] == 3
    # C was resolved by hand after the window: it still counts as resolved
    assert early["conflicts"] == {"raised": 2, "resolved_manually": 1,
                                  "resolved_by_pipeline": {"b2b": 1}, "open": 1}
    assert early["manual_overrides"] == {"total": 0, "rerouted": 0, "from_review": 0,
                                         "from_pool": 0}
    late = t.routing(since=rt(24))
    p = by_slug(late)
    assert (p["research"]["routed"], p["b2b"]["manual"], p["co-creation"]["manual"]) == (0, 2, 1)
    assert p["research"]["median_time_to_route_ms"] is None and p["research"]["win_rate"] is None
    assert late["total_routed"] == 3
    assert late["conflicts"] == {"raised": 0, "resolved_manually": 0, "resolved_by_pipeline": {},
                                 "open": 0}
    assert late["manual_overrides"]["total"] == 3
    mid = t.routing(since=rt(3), until=rt(6))  # B at 4 h, C and D at 5 h
    assert mid["total_routed"] == 1 and mid["conflicts"]["raised"] == 2
    assert near(by_slug(mid)["discovery"]["median_time_to_route_ms"], 4 * HOUR)


def test_routing_bad_input_and_other_tenants(routing_data, server):
    t = routing_data
    doc = problem(t.get("/api/v1/reports/routing", params={"since": "nope"}), 400)
    assert fields_of(doc) == {"since"}
    doc = problem(t.get("/api/v1/reports/routing", params={"since": "x", "until": "y"}), 400)
    assert fields_of(doc) == {"since", "until"}
    problem(server.get("/api/v1/reports/routing", role="ingest", tenant=t.slug), 403)
    r = server.get("/api/v1/reports/routing", role="viewer", tenant=t.slug)
    assert r.status_code == 200 and r.json()["total_routed"] == 6
    other = Sales(server).routing()
    assert other["total_routed"] == 0 and len(other["pipelines"]) == 4
    assert all(p["routed"] == p["won"] == p["lost"] == 0 and p["win_rate"] is None
               and p["median_time_to_route_ms"] is None for p in other["pipelines"])
    assert other["conflicts"] == {"raised": 0, "resolved_manually": 0,
                                  "resolved_by_pipeline": {}, "open": 0}
    assert other["manual_overrides"]["total"] == 0
