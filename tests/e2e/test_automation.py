"""The automation engine end to end: each trigger and each action, once-only score thresholds
under concurrent events, stage automation on routing, a person's move and an action's move,
time in stage with the clock moved, the chain depth limit, templates, budgets, failures that
leave the event's other work alone, and the outbox rows the outbound issue will send.

Each test works in a tenant of its own (seeded pipelines and team, no scoring or intent rules
unless it writes them)."""
import concurrent.futures
import json
import sqlite3
import time

import pytest

from conftest import Tenant, uniq

R = "/api/v1/automation/rules"


class Auto(Tenant):
    def db(self):
        return sqlite3.connect(self.s.db, timeout=10)

    def tenant_id(self):
        with self.db() as db:
            return db.execute("SELECT id FROM tenants WHERE slug = ?", (self.slug,)).fetchone()[0]

    def auto(self, trigger_type, trigger_config, action_type, action_config, **extra):
        body = {"name": uniq("auto"), "trigger_type": trigger_type,
                "trigger_config": trigger_config, "action_type": action_type,
                "action_config": action_config, **extra}
        r = self.post(R, body)
        assert r.status_code == 201, r.text
        return r.json()

    def new_lead(self, **fields):
        body = {"email": uniq("lead") + "@corp.example", **fields}
        r = self.post("/api/v1/leads", body)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def logs(self, **params):
        self.wait_idle()
        r = self.get("/api/v1/automation/logs", params={"limit": 500, **params})
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def rows(self, sql, *args):
        with self.db() as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(sql, args)]

    def deliveries(self, kind):
        return self.rows("SELECT * FROM deliveries WHERE tenant_id = ? AND kind = ?"
                         " ORDER BY created_at, id", self.tenant_id(), kind)

    def deals_of(self, lead_id):
        return self.rows("SELECT d.*, p.slug AS pipeline, s.slug AS stage FROM deals d"
                         " JOIN pipelines p ON p.id = d.pipeline_id JOIN pipeline_stages s"
                         " ON s.id = d.stage_id WHERE d.lead_id = ? ORDER BY d.id", lead_id)

    def deal(self, lead_id, pipeline="b2b"):
        r = self.post("/api/v1/deals", {"lead_id": lead_id, "pipeline": pipeline,
                                        "value_cents": 1250050})
        assert r.status_code == 201, r.text
        return r.json()

    def move(self, deal_id, stage):
        r = self.post(f"/api/v1/deals/{deal_id}/move", {"stage": stage})
        assert r.status_code == 200, r.text
        return r.json()

    def rule_row(self, rule_id):
        r = self.get(f"{R}/{rule_id}")
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def t(server):
    return Auto(server)


def test_event_trigger_with_conditions_creates_a_task_with_templates(t):
    rule = t.auto("event", {"event_type": "demo_request",
                            "conditions": [{"field": "metadata.plan", "op": "eq",
                                            "value": "enterprise"}]},
                  "create_task", {"title": "Call {lead.first_name} {lead.last_name} "
                                           "({lead.email}) — {lead.first_name}!",
                                  "task_type": "call", "due_days": 2})
    email = uniq("ada") + "@corp.example"
    ev = t.send("demo_request", email, first_name="Ada", last_name="Lovelace",
                metadata={"plan": "starter"})
    assert t.logs(rule=rule["id"]) == []  # conditions do not hold
    ev = t.send("demo_request", email, metadata={"plan": "Enterprise"})
    assert ev["result"]["automation"]["executions"] == 1
    logs = t.logs(rule=rule["id"])
    assert len(logs) == 1
    log = logs[0]
    assert log["status"] == "executed" and log["success"] is True and log["depth"] == 1
    assert log["event_id"] == ev["id"] and log["lead_id"] == ev["lead_id"]
    assert log["trigger_type"] == "event" and log["action_type"] == "create_task"
    title = f"Call Ada Lovelace ({email}) — Ada!"
    assert log["result"]["title"] == title
    tasks = t.get("/api/v1/tasks", params={"lead_id": ev["lead_id"]}).json()["items"]
    assert [x["title"] for x in tasks] == [title] and tasks[0]["task_type"] == "call"
    assert tasks[0]["due_at"]
    got = t.rule_row(rule["id"])
    assert got["execution_count"] == 1 and got["last_executed_at"]
    executed = t.domain_events("automation.executed", ev["lead_id"])
    assert len(executed) == 1 and executed[0]["metadata"]["rule_id"] == rule["id"]
    # a replay never runs the rule twice
    r = t.post(f"/api/v1/events/{ev['id']}/replay")
    assert r.status_code in (200, 202), r.text
    t.wait_idle()
    assert len(t.logs(rule=rule["id"])) == 1
    # the lead's timeline shows what fired and what it did
    items = t.get(f"/api/v1/leads/{ev['lead_id']}/timeline").json()["items"]
    auto = [i for i in items if i["kind"] == "automation"]
    assert len(auto) == 1 and auto[0]["rule_id"] == rule["id"] and auto[0]["status"] == "executed"
    assert auto[0]["result"]["title"] == title


def test_score_threshold_fires_once_per_lead_even_with_concurrent_events(t):
    t.rule(event_type="*", points=10)
    rule = t.auto("score_threshold", {"score_gte": 30}, "send_notification",
                  {"channel": "#hot", "text": "{lead.email} has {lead.score} points"})
    email = uniq("c") + "@corp.example"
    first = t.send("page_view", email)
    lead_id = first["lead_id"]

    def one(i):
        r = t.s.ingest({"event_type": "page_view", "lead": {"email": email}}, tenant=t.slug)
        assert r.status_code == 202, r.text

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(24)))
    t.wait_idle()
    assert t.lead(lead_id)["score"]["total"] >= 200
    logs = t.logs(rule=rule["id"])
    assert len(logs) == 1 and logs[0]["status"] == "executed"
    assert logs[0]["trigger_key"] == "score_gte:30"
    mine = [d for d in t.deliveries("slack") if json.loads(d["payload"]).get("channel") == "#hot"]
    assert len(mine) == 1
    payload = json.loads(mine[0]["payload"])
    # No Slack URL on this server: the dispatcher gives the row up (dead, saying why).
    assert payload["text"].startswith(email + " has ")
    assert mine[0]["status"] in ("pending", "in_flight", "dead")
    assert logs[0]["result"]["delivery_id"] == mine[0]["id"]


def test_intent_detected_trigger_and_update_field(t):
    t.intent_rule(event_type="b2b_signal", intent="b2b", points=20)
    rule = t.auto("intent_detected", {"intent": "b2b", "confidence_gte": 50},
                  "update_field", {"field": "status", "value": "qualified"})
    other = t.auto("intent_detected", {"intent": "research"}, "update_field",
                   {"field": "job_title", "value": "never"})
    ev = t.send("b2b_signal", uniq("i") + "@corp.example")
    logs = t.logs(rule=rule["id"])
    assert len(logs) == 1 and logs[0]["result"]["field"] == "status"
    assert logs[0]["result"]["to"] == "qualified"
    assert t.lead(ev["lead_id"])["status"] == "qualified"
    assert t.logs(rule=other["id"]) == []


def _b2b_stage(t, slug):
    p = t.get("/api/v1/pipelines/b2b").json()
    return next(s for s in p["stages"] if s["slug"] == slug)


def test_stage_entered_fires_on_routing_a_persons_move_and_an_actions_move(t):
    demo = _b2b_stage(t, "demo")
    t.auto("stage_entered", {"pipeline": "b2b", "stage": "qualified"}, "move_to_stage",
           {"stage": "demo"})
    on_new = t.auto("stage_entered", {"pipeline": "b2b", "stage": "new"}, "create_task",
                    {"title": "Welcome {deal.name} in {deal.stage}"})
    on_demo = t.auto("stage_entered", {"pipeline": "b2b", "stage": demo["id"]},
                     "send_notification", {"template": "stage_entered", "channel": "#demo"})
    # the stage lists its automation
    assert [a["id"] for a in _b2b_stage(t, "demo")["automation"]] == [on_demo["id"]]

    lead_id = t.new_lead(first_name="Grace")
    r = t.post(f"/api/v1/leads/{lead_id}/route", {"pipeline": "b2b"})  # routing: enters new
    assert r.status_code == 200, r.text
    logs = t.logs(rule=on_new["id"])
    assert len(logs) == 1 and logs[0]["result"]["title"].startswith("Welcome ")
    assert logs[0]["result"]["title"].endswith(" in New")
    deal = t.deals_of(lead_id)[0]
    t.move(deal["id"], "qualified")  # a person: qualified → the rule moves it on to demo
    assert t.deals_of(lead_id)[0]["stage"] == "demo"
    logs = t.logs(rule=on_demo["id"])
    assert len(logs) == 1 and logs[0]["depth"] == 2  # fired by the action's move
    text = logs[0]["result"]["text"]
    assert "entered Demo in B2B" in text
    hist = t.get(f"/api/v1/deals/{deal['id']}").json()["history"]
    assert [h.get("moved_by") for h in hist][-1] == "automation"


def test_route_to_pipeline_with_and_without_a_deal_and_assign_owner(t):
    t.auto("event", {"event_type": "wants_research"}, "route_to_pipeline",
           {"pipeline": "research", "create_deal": False})
    rule = t.auto("event", {"event_type": "wants_b2b"}, "route_to_pipeline", {"pipeline": "b2b"})
    assign = t.auto("event", {"event_type": "reassign_me"}, "assign_owner",
                    {"strategy": "capacity_based", "region": "US"})
    a = t.send("wants_research", uniq("r") + "@corp.example")
    lead = t.lead(a["lead_id"])
    assert lead["routing_status"] == "routed" and t.deals_of(a["lead_id"]) == []
    b = t.send("wants_b2b", uniq("b") + "@corp.example")
    deals = t.deals_of(b["lead_id"])
    assert len(deals) == 1 and deals[0]["pipeline"] == "b2b"
    assert t.logs(rule=rule["id"])[0]["result"]["deal_id"] == deals[0]["id"]
    t.send("reassign_me", t.lead(b["lead_id"])["email"])
    log = t.logs(rule=assign["id"])[0]
    assert log["status"] == "executed", log
    assert log["result"]["owner_id"] == t.deals_of(b["lead_id"])[0]["assigned_to"]


def test_failing_action_is_logged_and_leaves_the_events_other_work(t):
    t.rule(event_type="ping", points=5)
    rule = t.auto("event", {"event_type": "ping"}, "move_to_stage", {"stage": "demo"})
    ev = t.send("ping", uniq("f") + "@corp.example")
    assert ev["status"] == "processed"
    assert t.lead(ev["lead_id"])["score"]["total"] == 5
    logs = t.logs(rule=rule["id"])
    assert len(logs) == 1 and logs[0]["status"] == "failed" and logs[0]["success"] is False
    assert "no open deal" in logs[0]["error"]
    got = t.rule_row(rule["id"])
    assert got["execution_count"] == 1
    assert t.domain_events("automation.executed", ev["lead_id"]) == []
    assert t.logs(success="false", rule=rule["id"])[0]["id"] == logs[0]["id"]


def test_chain_stops_at_depth_five(t):
    t.auto("stage_entered", {"pipeline": "b2b", "stage": "qualified"}, "move_to_stage",
           {"stage": "demo"})
    t.auto("stage_entered", {"pipeline": "b2b", "stage": "demo"}, "move_to_stage",
           {"stage": "qualified"})
    lead_id = t.new_lead()
    deal = t.deal(lead_id)
    t.move(deal["id"], "qualified")
    logs = t.logs(lead=lead_id)
    assert sorted(l["depth"] for l in logs) == [1, 2, 3, 4, 5, 6]
    stopped = [l for l in logs if l["depth"] == 6]
    assert stopped[0]["status"] == "skipped" and "depth" in stopped[0]["error"]
    assert all(l["status"] == "executed" for l in logs if l["depth"] <= 5)


def test_budget_stops_a_runaway_rule(t):
    rule = t.auto("event", {"event_type": "spam"}, "send_webhook",
                  {"url": "https://hooks.example.com/x"}, max_executions_per_hour=2)
    for i in range(4):
        t.send("spam", uniq(f"s{i}") + "@corp.example")
    logs = t.logs(rule=rule["id"])
    assert sorted(l["status"] for l in logs) == ["executed", "executed", "skipped", "skipped"]
    assert all("budget" in l["error"] for l in logs if l["status"] == "skipped")
    assert len(t.deliveries("webhook")) == 2
    assert t.rule_row(rule["id"])["execution_count"] == 2


def test_outbox_rows_carry_what_will_be_sent(t):
    t.auto("event", {"event_type": "won_it"}, "sync_moco", {"operation": "create_customer"})
    t.auto("event", {"event_type": "won_it"}, "sync_moco", {"operation": "create_offer"},
           priority=200)
    hook = t.auto("event", {"event_type": "won_it"}, "send_webhook",
                  {"url": "https://hooks.example.com/won"}, priority=300)
    email = uniq("m") + "@acme-widgets.example"
    lead_id = t.send("hello", email, company="Acme Widgets")["lead_id"]
    deal = t.deal(lead_id)
    t.send("won_it", email)
    moco = t.deliveries("moco")
    assert [json.loads(d["payload"])["operation"] for d in moco] == ["create_customer",
                                                                     "create_offer"]
    customer, offer = (json.loads(d["payload"]) for d in moco)
    assert customer["method"] == "POST" and customer["path"] == "/companies"
    assert customer["body"]["name"] == "Acme Widgets" and customer["body"]["type"] == "customer"
    assert offer["path"] == "/offers" and offer["deal_id"] == deal["id"]
    assert offer["body"]["items"][0]["unit_price"] == "12500.50"
    wh = t.deliveries("webhook")
    assert len(wh) == 1 and wh[0]["target"] == "https://hooks.example.com/won"
    body = json.loads(wh[0]["payload"])
    assert body["type"] == "won_it" and body["data"]["lead"]["id"] == lead_id
    assert body["data"]["deal"]["id"] == deal["id"] and body["data"]["rule_id"] == hook["id"]
    assert body["id"] and body["timestamp"]


def test_dry_run_changes_nothing_and_says_what_would_happen(t):
    rule = t.auto("event", {"event_type": "demo_request"}, "create_task",
                  {"title": "Call {lead.email}"})
    chained = t.auto("event", {"event_type": "task.created"}, "update_field",
                     {"field": "job_title", "value": "Prospect"})
    email = uniq("d") + "@corp.example"
    lead_id = t.new_lead(email=email)
    r = t.post(f"{R}/{rule['id']}/test", {"lead_id": lead_id,
                                          "event": {"event_type": "demo_request"}})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["would_fire"] is True
    assert out["executions"][0]["result"]["title"] == f"Call {email}"
    assert [e["rule_id"] for e in out["executions"]] == [rule["id"], chained["id"]]
    assert "task.created" in [e["type"] for e in out["events"]]
    assert t.get("/api/v1/tasks", params={"lead_id": lead_id}).json()["items"] == []
    assert t.logs(lead=lead_id) == []
    assert t.rule_row(rule["id"])["execution_count"] == 0
    assert t.lead(lead_id).get("job_title") is None
    r = t.post(f"{R}/{rule['id']}/test", {"lead_id": lead_id,
                                          "event": {"event_type": "other"}})
    assert r.json()["would_fire"] is False and r.json()["reason"]


def test_time_in_stage_fires_once_with_the_clock_moved(fresh_server):
    s = fresh_server
    s.env["LEADFLOW_TEST_NOW"] = "2026-03-02T09:00:00Z"
    s.start()
    t = Auto(s)
    rule = t.auto("time_in_stage", {"days": 3, "hours": 1, "pipeline": "b2b", "stage": "new"},
                  "create_task", {"title": "{deal.name} is stuck in {deal.stage}"})
    lead_id = t.new_lead()
    deal = t.deal(lead_id)
    run = t.post("/api/v1/scheduler/jobs/stage_timers/run")
    assert run.status_code == 200, run.text
    assert t.logs(rule=rule["id"]) == []
    later = "2026-03-06T09:00:00Z"
    r = s.put("/api/v1/test/clock", {"now": later})
    assert r.status_code == 200, r.text
    s.env["LEADFLOW_TEST_NOW"] = later
    s._tokens.clear()
    for _ in range(2):
        run = t.post("/api/v1/scheduler/jobs/stage_timers/run")
        assert run.status_code == 200, run.text
    logs = t.logs(rule=rule["id"])
    assert len(logs) == 1 and logs[0]["deal_id"] == deal["id"]
    assert logs[0]["result"]["title"].endswith("is stuck in New")
    # a new entry into the stage starts a new wait
    t.move(deal["id"], "qualified")
    t.move(deal["id"], "new")
    t.post("/api/v1/scheduler/jobs/stage_timers/run")
    assert len(t.logs(rule=rule["id"])) == 1
    s.put("/api/v1/test/clock", {"now": "2026-03-10T10:00:00Z"})
    s.env["LEADFLOW_TEST_NOW"] = "2026-03-10T10:00:00Z"
    s._tokens.clear()
    t.post("/api/v1/scheduler/jobs/stage_timers/run")
    assert len(t.logs(rule=rule["id"])) == 2


def test_only_the_engine_can_say_a_score_intent_or_stage_changed(t):
    rule = t.auto("score_threshold", {"score_gte": 1000}, "update_field",
                  {"field": "job_title", "value": "VIP"})
    ev = t.send("lead.scored", uniq("fake") + "@corp.example", metadata={"score": 99999})
    assert t.logs(rule=rule["id"]) == []
    assert t.lead(ev["lead_id"]).get("job_title") is None


def test_a_rendered_text_past_its_field_fails_the_action(t):
    rule = t.auto("event", {"event_type": "grow"}, "update_field",
                  {"field": "first_name", "value": "{lead.email}" * 9})
    ev = t.send("grow", uniq("long-address") + "@corp.example")
    [log] = t.logs(rule=rule["id"])
    assert log["status"] == "failed" and "at most 200" in log["error"], log
    assert ev["status"] == "processed"


def test_intent_rule_fires_when_confidence_rises_after_the_intent_changed(t):
    t.intent_rule(event_type="download", intent="b2b", points=10)
    rule = t.auto("intent_detected", {"intent": "b2b", "confidence_gte": 80}, "create_task",
                  {"title": "B2B for sure"})
    email = uniq("rise") + "@corp.example"
    first = t.send("download", email)  # b2b at confidence 33: the intent changes, too weak
    assert t.logs(rule=rule["id"]) == []
    for _ in range(3):
        t.send("download", email)  # 40 points: confidence 100, no new intent event
    logs = t.logs(rule=rule["id"])
    assert len(logs) == 1 and logs[0]["trigger_key"] == "intent:b2b"
    for _ in range(2):
        t.send("download", email)
    assert len(t.logs(rule=rule["id"])) == 1  # once per lead and intent
    assert first["lead_id"] == logs[0]["lead_id"]


def test_a_skip_gives_a_once_only_trigger_back_and_logs_record_the_deal_acted_on(t):
    t.rule(event_type="*", points=10)
    rule = t.auto("score_threshold", {"score_gte": 10}, "move_to_stage", {"stage": "demo"},
                  max_executions_per_hour=1)
    a = t.new_lead()
    deal = t.deal(a)
    t.send("ping", t.lead(a)["email"])
    [log] = t.logs(rule=rule["id"])
    assert log["status"] == "executed" and log["deal_id"] == deal["id"]  # the deal it moved
    assert [l["id"] for l in t.logs(deal=deal["id"])] == [log["id"]]
    email = uniq("b") + "@corp.example"
    for _ in range(2):
        t.send("ping", email)
    skipped = [l for l in t.logs(rule=rule["id"]) if l["status"] == "skipped"]
    assert len(skipped) == 2  # the key was not used up by the first skip
    assert all(l["trigger_key"].startswith("score_gte:10#skipped:") for l in skipped)


def test_merge_moves_every_log_and_deleting_the_survivor_takes_them(t):
    t.rule(event_type="*", points=10)
    rule = t.auto("score_threshold", {"score_gte": 10}, "update_field",
                  {"field": "region", "value": "EU"})
    a = t.send("ping", uniq("a") + "@corp.example")["lead_id"]
    b = t.send("ping", uniq("b") + "@corp.example")["lead_id"]
    assert len(t.logs(rule=rule["id"])) == 2
    r = t.post(f"/api/v1/leads/{a}/merge", {"other_id": b})
    assert r.status_code == 200, r.text
    logs = t.logs(rule=rule["id"])
    assert len(logs) == 2 and {l["lead_id"] for l in logs} == {a}
    assert t.delete(f"/api/v1/leads/{a}").status_code == 204
    assert t.logs(rule=rule["id"]) == []


def test_send_webhook_to_a_subscription_targets_its_url(t):
    sub_id = "0190f0f0-0000-7000-8000-" + uniq("")[1:9].ljust(12, "0")
    with t.db() as db:
        db.execute("INSERT INTO subscriptions (id, tenant_id, url, event_types, secret, created_at,"
                   " updated_at) VALUES (?, ?, 'https://subscriber.example.com/in', '[\"never.sent\"]',"
                   " 'whsec_x', 0, 0)", (sub_id, t.tenant_id()))
    rule = t.auto("event", {"event_type": "notify_sub"}, "send_webhook",
                  {"subscription": sub_id})
    ev = t.send("notify_sub", uniq("w") + "@corp.example")
    [log] = t.logs(rule=rule["id"])
    assert log["status"] == "executed" and log["result"]["subscription_id"] == sub_id
    [row] = t.deliveries("webhook")
    assert row["subscription_id"] == sub_id and row["event_id"] == ev["id"]
    assert row["target"] == "https://subscriber.example.com/in"
    # another tenant's (or an unknown) subscription is refused on save
    r = t.post(R, {"name": "x", "trigger_type": "event", "trigger_config": {"event_type": "a"},
                   "action_type": "send_webhook",
                   "action_config": {"subscription": "0190f0f0-0000-7000-8000-000000000000"}})
    assert r.status_code == 400 and "action_config.subscription" in r.text
