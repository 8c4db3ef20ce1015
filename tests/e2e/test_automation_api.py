"""Automation rules and logs over the API: create every trigger and action type, the checks a
rule body gets (each bad key named), list filters, get, patch, enable, disable, delete, roles,
the log list and its filters, and the dry run (POST /automation/rules/{id}/test), which must
change nothing. Each test works in a tenant of its own (seeded pipelines, no scoring or intent
rules, no automation rules); the refusals share one in which nothing is ever saved."""
import sqlite3

import pytest

from conftest import Tenant, fields_of, problem, uniq

R = "/api/v1/automation/rules"
LOGS = "/api/v1/automation/logs"

RULE_KEYS = {"id", "name", "description", "trigger_type", "trigger_config", "action_type",
             "action_config", "priority", "is_active", "max_executions_per_hour",
             "last_executed_at", "execution_count", "created_at", "updated_at"}
LOG_KEYS = {"id", "rule_id", "rule", "lead_id", "deal_id", "event_id", "trigger_key",
            "trigger_type", "action_type", "status", "success", "depth", "result", "error",
            "created_at"}

TASK = {"action_type": "create_task", "action_config": {"title": "Call {lead.first_name}"}}
SCORE = {"trigger_type": "score_threshold", "trigger_config": {"score_gte": 50}}
DROP = object()  # a member left out of the body


@pytest.fixture
def t(server):
    return Tenant(server)


@pytest.fixture(scope="module")
def shared(server):
    """One tenant for the many refusals, in which nothing is ever saved."""
    return Tenant(server)


@pytest.fixture
def own(fresh_server):
    """A tenant on a server of the test's own, for tests that once crashed the server."""
    return Tenant(fresh_server.start())


def create(t, **body):
    full = {"name": uniq("rule"), **SCORE, **TASK}
    full.update(body)
    r = t.post(R, full)
    assert r.status_code == 201, r.text
    rule = r.json()
    assert set(rule) == RULE_KEYS
    return rule


def refused(t, body, field, path=R, method="post"):
    r = getattr(t, method)(path, body)
    doc = problem(r, 400)
    assert field in fields_of(doc), doc
    return doc


def new_lead(t, **fields):
    r = t.post("/api/v1/leads", {"email": uniq("lead") + "@acme.example", **fields})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def pipeline(t, slug):
    r = t.get(f"/api/v1/pipelines/{slug}")
    assert r.status_code == 200, r.text
    return r.json()


def stage_of(p, slug):
    return next(s for s in p["stages"] if s["slug"] == slug)


def member(t, role="account_executive"):
    r = t.post("/api/v1/team", {"email": uniq("m") + "@team.example", "name": "Member",
                                "role": role})
    assert r.status_code == 201, r.text
    return r.json()


# ---- create


def test_create_has_defaults_and_the_rule_reads_back(t):
    rule = create(t, name="Hot lead task")
    assert rule["name"] == "Hot lead task"
    assert rule["trigger_type"] == "score_threshold" and rule["trigger_config"] == {"score_gte": 50}
    assert rule["action_type"] == "create_task"
    assert rule["action_config"] == {"title": "Call {lead.first_name}"}
    assert rule["priority"] == 100 and rule["is_active"] is True
    assert rule["description"] is None and rule["max_executions_per_hour"] is None
    assert rule["last_executed_at"] is None and rule["execution_count"] == 0
    assert rule["created_at"].endswith("Z") and rule["updated_at"] == rule["created_at"]
    got = t.get(f"{R}/{rule['id']}")
    assert got.status_code == 200 and got.json() == rule


def test_create_with_every_member(t):
    rule = create(t, description="Tell sales", priority=5, is_active=False,
                  max_executions_per_hour=10)
    assert rule["description"] == "Tell sales" and rule["priority"] == 5
    assert rule["is_active"] is False and rule["max_executions_per_hour"] == 10


def test_create_each_trigger_type(t):
    b2b = pipeline(t, "b2b")
    demo = stage_of(b2b, "demo")
    qualified = stage_of(b2b, "qualified")
    cases = [
        ("event", {"event_type": "form_submit",
                   "conditions": [{"field": "metadata.form", "op": "eq", "value": "demo"}]}),
        ("event", {"event_type": "*"}),
        ("score_threshold", {"score_gte": 80}),
        ("intent_detected", {"intent": "b2b", "confidence_gte": 60}),
        ("intent_detected", {}),
    ]
    for trigger, config in cases:
        rule = create(t, trigger_type=trigger, trigger_config=config)
        assert rule["trigger_type"] == trigger and rule["trigger_config"] == config
    # a pipeline's slug and a stage's slug come back as ids
    rule = create(t, trigger_type="stage_entered",
                  trigger_config={"pipeline": "b2b", "stage": "demo"})
    assert rule["trigger_config"] == {"pipeline": b2b["id"], "stage": demo["id"]}
    # a stage id alone names its pipeline too
    rule = create(t, trigger_type="stage_entered", trigger_config={"stage": qualified["id"]})
    assert rule["trigger_config"] == {"pipeline": b2b["id"], "stage": qualified["id"]}
    rule = create(t, trigger_type="time_in_stage",
                  trigger_config={"days": 3, "hours": 12, "pipeline": "b2b", "stage": "demo"})
    assert rule["trigger_config"] == {"days": 3, "hours": 12, "pipeline": b2b["id"],
                                      "stage": demo["id"]}
    rule = create(t, trigger_type="time_in_stage", trigger_config={"days": 0, "hours": 6,
                                                                   "pipeline": "b2b"})
    assert rule["trigger_config"] == {"days": 0, "hours": 6, "pipeline": b2b["id"]}
    rule = create(t, trigger_type="time_in_stage", trigger_config={"days": 7})
    assert rule["trigger_config"] == {"days": 7}
    listed = t.get(R, params={"trigger_type": "time_in_stage"}).json()["items"]
    assert len(listed) == 3


def test_create_each_action_type(t):
    m = member(t)
    cases = [
        ("move_to_stage", {"stage": "proposal", "pipeline": "b2b"}),
        ("move_to_stage", {"stage": "proposal"}),
        ("assign_owner", {"strategy": "round_robin", "role": "account_executive",
                          "region": "DACH"}),
        ("assign_owner", {}),
        ("send_notification", {"channel": "#sales", "text": "Hot: {lead.email} ({lead.score})"}),
        ("send_notification", {"template": "hot_lead"}),
        ("create_task", {"title": "Call {lead.first_name} about {deal.name}",
                         "task_type": "call", "due_days": 2, "assignee": "owner"}),
        ("create_task", {"title": "Send the offer", "assignee": m["email"]}),
        ("create_task", {"title": "Send the offer", "assignee": m["id"]}),
        ("sync_moco", {"operation": "create_customer"}),
        ("sync_moco", {"operation": "create_offer"}),
        ("update_field", {"field": "status", "value": "qualified"}),
        ("update_field", {"field": "lifecycle_stage", "value": "sql"}),
        ("update_field", {"field": "job_title", "value": "{lead.company} buyer"}),
        ("update_field", {"field": "phone", "value": None}),
        ("route_to_pipeline", {"pipeline": "b2b", "create_deal": False}),
        ("route_to_pipeline", {"pipeline": "research"}),
        ("send_webhook", {"url": "https://hooks.example.com/leadflow"}),
        ("send_webhook", {"url": "http://10.0.0.5:8080/in"}),
    ]
    b2b = t.get("/api/v1/pipelines/b2b").json()
    ids = {"b2b": b2b["id"], "research": t.get("/api/v1/pipelines/research").json()["id"],
           "proposal": next(s["id"] for s in b2b["stages"] if s["slug"] == "proposal")}
    for action, config in cases:
        rule = create(t, action_type=action, action_config=config)
        # a named pipeline (and a move's stage in it) is stored by id: renames keep the rule
        want = dict(config)
        if "pipeline" in want:
            want["pipeline"] = ids[want["pipeline"]]
            if "stage" in want:
                want["stage"] = ids[want["stage"]]
        assert rule["action_type"] == action and rule["action_config"] == want, rule
    items = t.get(R).json()["items"]
    assert len(items) == len(cases)
    assert {r["action_type"] for r in items} == {c[0] for c in cases}


# ---- invalid bodies

INVALID = [
    ("unknown trigger type", {"trigger_type": "on_tuesday"}, "trigger_type"),
    ("unknown action type", {"action_type": "send_fax"}, "action_type"),
    ("unknown top-level key", {"colour": "red"}, "colour"),
    ("slug is not a member", {"slug": "hot"}, "slug"),
    ("missing name", {"name": DROP}, "name"),
    ("null name", {"name": None}, "name"),
    ("empty name", {"name": ""}, "name"),
    ("priority not an integer", {"priority": "high"}, "priority"),
    ("is_active not a bool", {"is_active": 1}, "is_active"),
    ("budget of zero", {"max_executions_per_hour": 0}, "max_executions_per_hour"),
    ("trigger_config not an object", {"trigger_config": [1]}, "trigger_config"),
    ("unknown trigger config key", {"trigger_config": {"score_gte": 5, "score_lte": 9}},
     "trigger_config.score_lte"),
    ("score_gte missing", {"trigger_config": {}}, "trigger_config.score_gte"),
    ("score_gte not an integer", {"trigger_config": {"score_gte": "50"}},
     "trigger_config.score_gte"),
    ("score_gte a float", {"trigger_config": {"score_gte": 50.5}}, "trigger_config.score_gte"),
    ("event type missing", {"trigger_type": "event", "trigger_config": {}},
     "trigger_config.event_type"),
    ("event conditions bad", {"trigger_type": "event", "trigger_config": {
        "event_type": "page_view", "conditions": [{"field": "metadata.x", "op": "nearly"}]}},
     "trigger_config.conditions[0].op"),
    ("confidence over 100", {"trigger_type": "intent_detected",
                             "trigger_config": {"confidence_gte": 101}},
     "trigger_config.confidence_gte"),
    ("stage does not exist", {"trigger_type": "stage_entered",
                              "trigger_config": {"pipeline": "b2b", "stage": "nope"}},
     "trigger_config.stage"),
    ("stage slug without pipeline", {"trigger_type": "stage_entered",
                                     "trigger_config": {"stage": "demo"}},
     "trigger_config.stage"),
    ("pipeline does not exist", {"trigger_type": "time_in_stage",
                                 "trigger_config": {"days": 2, "pipeline": "nope"}},
     "trigger_config.pipeline"),
    ("time in stage under an hour", {"trigger_type": "time_in_stage",
                                     "trigger_config": {"days": 0, "hours": 0}},
     "trigger_config.days"),
    ("time in stage days missing", {"trigger_type": "time_in_stage",
                                    "trigger_config": {"hours": 5}}, "trigger_config.days"),
    ("task title missing", {"action_config": {"due_days": 1}}, "action_config.title"),
    ("no action config", {"action_config": DROP}, "action_config.title"),
    ("action config null", {"action_config": None}, "action_config"),
    ("task title placeholder", {"action_config": {"title": "Call {lead.nme}"}},
     "action_config.title"),
    ("task assignee unknown", {"action_config": {"title": "x", "assignee": "ghost@nowhere.example"}},
     "action_config.assignee"),
    ("task due_days negative", {"action_config": {"title": "x", "due_days": -1}},
     "action_config.due_days"),
    ("notification placeholder", {"action_type": "send_notification",
                                  "action_config": {"text": "Hi {lead.nme}"}},
     "action_config.text"),
    ("notification text and template", {"action_type": "send_notification", "action_config": {
        "text": "Hi", "template": "hot_lead"}}, "action_config.text"),
    ("notification neither", {"action_type": "send_notification",
                              "action_config": {"channel": "#x"}}, "action_config.text"),
    ("notification unknown template", {"action_type": "send_notification",
                                       "action_config": {"template": "cold_lead"}},
     "action_config.template"),
    ("update_field email", {"action_type": "update_field",
                            "action_config": {"field": "email", "value": "x@y.example"}},
     "action_config.field"),
    ("update_field total_score", {"action_type": "update_field",
                                  "action_config": {"field": "total_score", "value": "100"}},
     "action_config.field"),
    ("update_field status value", {"action_type": "update_field",
                                   "action_config": {"field": "status", "value": "won"}},
     "action_config.value"),
    ("update_field value missing", {"action_type": "update_field",
                                    "action_config": {"field": "phone"}}, "action_config.value"),
    ("webhook neither", {"action_type": "send_webhook", "action_config": {}},
     "action_config.url"),
    ("webhook ftp", {"action_type": "send_webhook", "action_config": {"url": "ftp://x.example/"}},
     "action_config.url"),
    ("webhook unknown subscription", {"action_type": "send_webhook", "action_config": {
        "subscription": "0190a5e4-0000-7000-8000-000000000000"}}, "action_config.subscription"),
    ("moco operation", {"action_type": "sync_moco", "action_config": {"operation": "delete"}},
     "action_config.operation"),
    ("move stage missing", {"action_type": "move_to_stage", "action_config": {"pipeline": "b2b"}},
     "action_config.stage"),
    ("move stage not in pipeline", {"action_type": "move_to_stage",
                                    "action_config": {"pipeline": "b2b", "stage": "nope"}},
     "action_config.stage"),
    ("route pipeline unknown", {"action_type": "route_to_pipeline",
                                "action_config": {"pipeline": "nope"}},
     "action_config.pipeline"),
    ("assign strategy", {"action_type": "assign_owner",
                         "action_config": {"strategy": "manual"}}, "action_config.strategy"),
]


@pytest.mark.parametrize("what,change,field", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_rule_is_refused_naming_the_key(shared, what, change, field):
    t = shared
    body = {"name": "bad", **SCORE, **TASK}
    for k, v in change.items():
        if v is DROP:
            body.pop(k, None)
        else:
            body[k] = v
    refused(t, body, field)
    assert t.get(R).json()["items"] == []  # nothing was saved


def test_placeholder_message_names_the_placeholder_and_the_known_ones(t):
    doc = refused(t, {"name": "x", **SCORE, "action_type": "create_task",
                      "action_config": {"title": "Call {lead.nme}"}}, "action_config.title")
    msg = next(e["message"] for e in doc["errors"] if e["field"] == "action_config.title")
    assert "{lead.nme}" in msg and "{lead.first_name}" in msg


def test_every_problem_is_listed(t):
    doc = refused(t, {"name": "", "trigger_type": "nope", "action_type": "nope", "x": 1}, "x")
    assert {"name", "trigger_type", "action_type", "x"} <= fields_of(doc)
    refused(t, {"trigger_type": "score_threshold", "action_type": "create_task"}, "name")


def test_a_body_that_is_not_json_is_refused(t):
    r = t.s.http.post(t.s.url + R, data="{", headers={**t.s.auth(tenant=t.slug),
                                                       "Content-Type": "application/json"})
    problem(r, 400)


# ---- list, get, patch


def test_list_filters_and_order(t):
    a = create(t, priority=20, trigger_type="event", trigger_config={"event_type": "page_view"})
    b = create(t, priority=10, action_type="send_webhook",
               action_config={"url": "https://x.example/h"})
    c = create(t, priority=20, is_active=False)
    page = t.get(R).json()
    assert page["next_cursor"] is None
    assert [r["id"] for r in page["items"]] == [b["id"], a["id"], c["id"]]

    def ids(**params):
        r = t.get(R, params=params)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["items"]]

    assert ids(trigger_type="event") == [a["id"]]
    assert ids(trigger_type="score_threshold") == [b["id"], c["id"]]
    assert ids(action_type="send_webhook") == [b["id"]]
    assert ids(action_type="create_task") == [a["id"], c["id"]]
    assert ids(is_active="true") == [b["id"], a["id"]]
    assert ids(is_active="false") == [c["id"]]
    assert ids(is_active="false", action_type="send_webhook") == []
    assert ids(trigger_type="intent_detected") == []
    for name, value in (("is_active", "yes"), ("trigger_type", "sometimes"),
                        ("action_type", "dance")):
        assert name in fields_of(problem(t.get(R, params={name: value}), 400))


def test_get_unknown_rule_is_404(t):
    doc = problem(t.get(f"{R}/0190a5e4-0000-7000-8000-000000000000"), 404)
    assert "no automation rule" in doc["detail"]
    problem(t.get(f"{R}/not-an-id"), 404)


def test_rules_are_per_tenant(server, t):
    rule = create(t)
    other = Tenant(server)
    problem(other.get(f"{R}/{rule['id']}"), 404)
    problem(other.patch(f"{R}/{rule['id']}", {"priority": 1}), 404)
    problem(other.delete(f"{R}/{rule['id']}"), 404)
    problem(other.post(f"{R}/{rule['id']}/disable"), 404)
    assert other.get(R).json()["items"] == []


def test_patch_priority_only(t):
    rule = create(t)
    r = t.patch(f"{R}/{rule['id']}", {"priority": 7})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["priority"] == 7 and got["updated_at"] >= rule["updated_at"]
    for k in RULE_KEYS - {"priority", "updated_at"}:
        assert got[k] == rule[k], k
    assert t.get(f"{R}/{rule['id']}").json() == got


def test_patch_members(t):
    rule = create(t, description="old", max_executions_per_hour=5)
    got = t.patch(f"{R}/{rule['id']}", {"name": "Renamed", "description": None,
                                        "max_executions_per_hour": None,
                                        "is_active": False}).json()
    assert got["name"] == "Renamed" and got["description"] is None
    assert got["max_executions_per_hour"] is None and got["is_active"] is False
    # a config alone is checked against the stored type
    got = t.patch(f"{R}/{rule['id']}", {"trigger_config": {"score_gte": 90}}).json()
    assert got["trigger_config"] == {"score_gte": 90}
    refused(t, {"trigger_config": {"event_type": "page_view"}}, "trigger_config.event_type",
            f"{R}/{rule['id']}", "patch")
    refused(t, {"action_config": {"field": "status", "value": "new"}}, "action_config.field",
            f"{R}/{rule['id']}", "patch")
    # an empty patch succeeds
    assert t.patch(f"{R}/{rule['id']}", {}).status_code == 200


def test_patch_changing_a_type_needs_its_config(t):
    rule = create(t)
    path = f"{R}/{rule['id']}"
    refused(t, {"trigger_type": "event"}, "trigger_config", path, "patch")
    refused(t, {"action_type": "send_webhook"}, "action_config", path, "patch")
    # the same type again needs nothing
    assert t.patch(path, {"trigger_type": "score_threshold"}).status_code == 200
    got = t.patch(path, {"trigger_type": "stage_entered",
                         "trigger_config": {"pipeline": "b2b", "stage": "demo"}})
    assert got.status_code == 200, got.text
    demo = stage_of(pipeline(t, "b2b"), "demo")
    assert got.json()["trigger_type"] == "stage_entered"
    assert got.json()["trigger_config"]["stage"] == demo["id"]
    got = t.patch(path, {"action_type": "send_webhook",
                         "action_config": {"url": "https://x.example/"}}).json()
    assert got["action_type"] == "send_webhook"
    # a refused patch changes nothing
    refused(t, {"priority": 1, "colour": "red"}, "colour", path, "patch")
    assert t.get(path).json()["priority"] == 100


def test_patch_unknown_rule_is_404(t):
    problem(t.patch(f"{R}/0190a5e4-0000-7000-8000-000000000000", {"priority": 1}), 404)


# ---- enable, disable, delete, roles


def test_enable_and_disable(t):
    rule = create(t)
    r = t.post(f"{R}/{rule['id']}/disable")
    assert r.status_code == 200, r.text
    assert r.json()["is_active"] is False and r.json()["id"] == rule["id"]
    assert [x["id"] for x in t.get(R, params={"is_active": "false"}).json()["items"]] == [
        rule["id"]]
    assert t.post(f"{R}/{rule['id']}/disable").json()["is_active"] is False  # twice is fine
    r = t.post(f"{R}/{rule['id']}/enable")
    assert r.status_code == 200 and r.json()["is_active"] is True
    assert t.get(f"{R}/{rule['id']}").json()["is_active"] is True
    problem(t.post(f"{R}/0190a5e4-0000-7000-8000-000000000000/enable"), 404)


def test_delete(t):
    rule = create(t)
    r = t.delete(f"{R}/{rule['id']}")
    assert r.status_code == 204 and r.text == ""
    problem(t.get(f"{R}/{rule['id']}"), 404)
    problem(t.delete(f"{R}/{rule['id']}"), 404)
    problem(t.post(f"{R}/{rule['id']}/enable"), 404)
    assert t.get(R).json()["items"] == []


def test_roles(server, t):
    rule = create(t)
    body = {"name": "x", **SCORE, **TASK}
    for role in ("viewer", "sales"):
        problem(server.post(R, body, role=role, tenant=t.slug), 403)
        problem(server.patch(f"{R}/{rule['id']}", {"priority": 1}, role=role, tenant=t.slug),
                403)
        problem(server.post(f"{R}/{rule['id']}/disable", role=role, tenant=t.slug), 403)
        problem(server.post(f"{R}/{rule['id']}/test", {"lead_id": rule["id"]}, role=role,
                            tenant=t.slug), 403)
        problem(server.delete(f"{R}/{rule['id']}", role=role, tenant=t.slug), 403)
        assert server.get(R, role=role, tenant=t.slug).status_code == 200
        assert server.get(f"{R}/{rule['id']}", role=role, tenant=t.slug).status_code == 200
        assert server.get(LOGS, role=role, tenant=t.slug).status_code == 200
    r = server.post(R, body, role="manager", tenant=t.slug)
    assert r.status_code == 201, r.text
    problem(server.get(R, role="ingest", tenant=t.slug), 403)


# ---- logs


def test_logs_of_a_fresh_tenant_are_an_empty_page(t):
    r = t.get(LOGS)
    assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}
    ok = {"rule": "0190a5e4-0000-7000-8000-000000000000", "success": "false",
          "status": "skipped", "since": "2026-01-01T00:00:00Z", "limit": "500",
          "lead": "0190a5e4-0000-7000-8000-000000000001",
          "cursor": "1767225600000.0190a5e4-0000-7000-8000-000000000002"}
    r = t.get(LOGS, params=ok)
    assert r.status_code == 200 and r.json()["items"] == [], r.text


@pytest.mark.parametrize("name,value", [
    ("success", "yes"), ("success", "1"), ("status", "running"), ("status", "done"),
    ("since", "yesterday"), ("rule", "hot"), ("lead", "x"), ("deal", "1"), ("event", "e"),
    ("limit", "0"), ("limit", "501"), ("limit", "ten"), ("cursor", "abc"),
    ("cursor", "0190a5e4-0000-7000-8000-000000000000"),
])
def test_logs_bad_filter_is_400_naming_it(shared, name, value):
    doc = problem(shared.get(LOGS, params={name: value}), 400)
    assert fields_of(doc) == {name}, doc


def test_logs_of_real_executions_filter_and_page(t):
    """An event rule that sets a field runs in the pipeline; its log entries list newest first,
    filter and page, and stay (with rule null) after the rule is deleted."""
    rule = create(t, name="Engineer", trigger_type="event",
                  trigger_config={"event_type": "page_view"}, action_type="update_field",
                  action_config={"field": "job_title", "value": "Engineer"})
    other = create(t, trigger_type="event", trigger_config={"event_type": "download"},
                   action_type="update_field",
                   action_config={"field": "status", "value": "contacted"})
    email = uniq("ada") + "@acme.example"
    e1 = t.send("page_view", email)
    e2 = t.send("page_view", email)
    e3 = t.send("download", email)
    lead = e1["lead_id"]
    assert t.lead(lead)["job_title"] == "Engineer"
    t.wait_idle()
    page = t.get(LOGS).json()
    items = page["items"]
    assert len(items) == 3 and page["next_cursor"] is None
    assert all(set(i) == LOG_KEYS for i in items)
    assert [i["event_id"] for i in items] == [e3["id"], e2["id"], e1["id"]]
    first = items[-1]
    assert first["rule_id"] == rule["id"] and first["rule"] == "Engineer"
    assert first["lead_id"] == lead and first["status"] == "executed"
    assert first["success"] is True and first["depth"] == 1 and first["error"] is None
    assert first["trigger_type"] == "event" and first["action_type"] == "update_field"
    assert first["trigger_key"] == f"event:{e1['id']}"
    assert first["result"]["field"] == "job_title" and first["result"]["to"] == "Engineer"
    assert first["created_at"].endswith("Z")

    def ids(**params):
        r = t.get(LOGS, params=params)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert ids(rule=rule["id"]) == [items[1]["id"], items[2]["id"]]
    assert ids(rule=other["id"]) == [items[0]["id"]]
    assert ids(lead=lead) == [i["id"] for i in items]
    assert ids(event=e2["id"]) == [items[1]["id"]]
    assert ids(success="true", status="executed") == [i["id"] for i in items]
    assert ids(success="false") == [] and ids(status="failed") == []
    assert ids(since="2999-01-01T00:00:00Z") == []
    assert ids(deal="0190a5e4-0000-7000-8000-000000000000") == []
    # pages of one, by the cursor
    seen, cursor = [], None
    while True:
        r = t.get(LOGS, params={"limit": 1, **({"cursor": cursor} if cursor else {})}).json()
        seen += [i["id"] for i in r["items"]]
        cursor = r["next_cursor"]
        if cursor is None:
            break
    assert seen == [i["id"] for i in items]
    # the rule counted its executions
    got = t.get(f"{R}/{rule['id']}").json()
    assert got["execution_count"] == 2 and got["last_executed_at"] is not None
    # deleting the rule keeps its log, whose rule then reads null
    assert t.delete(f"{R}/{rule['id']}").status_code == 204
    kept = t.get(LOGS, params={"rule": rule["id"]}).json()["items"]
    assert len(kept) == 2 and all(i["rule"] is None for i in kept)


def test_budget_skips_are_logged(t):
    rule = create(t, trigger_type="event", trigger_config={"event_type": "page_view"},
                  action_type="update_field",
                  action_config={"field": "job_title", "value": "Engineer"},
                  max_executions_per_hour=1)
    email = uniq("bud") + "@acme.example"
    t.send("page_view", email)
    t.send("page_view", email)
    t.wait_idle()
    items = t.get(LOGS, params={"rule": rule["id"]}).json()["items"]
    assert [i["status"] for i in items] == ["skipped", "executed"]
    skipped = t.get(LOGS, params={"status": "skipped"}).json()["items"]
    assert len(skipped) == 1 and skipped[0]["success"] is False
    assert "max_executions_per_hour" in skipped[0]["error"] and skipped[0]["result"] is None
    assert [i["id"] for i in t.get(LOGS, params={"success": "false"}).json()["items"]] == [
        skipped[0]["id"]]
    assert t.get(f"{R}/{rule['id']}").json()["execution_count"] == 1


def test_a_stage_rule_runs_when_a_deal_enters_and_its_log_names_the_deal(t):
    rule = create(t, trigger_type="stage_entered", trigger_config={"pipeline": "b2b",
                                                                   "stage": "new"},
                  action_type="update_field",
                  action_config={"field": "lifecycle_stage", "value": "opportunity"})
    lead = new_lead(t)
    r = t.post("/api/v1/deals", {"lead_id": lead, "pipeline": "b2b"})
    assert r.status_code == 201, r.text
    deal = r.json()["id"]
    [log] = t.get(LOGS, params={"deal": deal}).json()["items"]
    assert log["rule_id"] == rule["id"] and log["lead_id"] == lead and log["deal_id"] == deal
    assert log["trigger_type"] == "stage_entered" and log["status"] == "executed"
    assert log["trigger_key"].startswith("stage:")
    assert t.lead(lead)["lifecycle_stage"] == "opportunity"
    assert t.get(LOGS, params={"lead": lead}).json()["items"] == [log]


# ---- the dry run


def test_dry_run_errors(t):
    rule = create(t)
    lead = new_lead(t)
    path = f"{R}/{rule['id']}/test"
    doc = problem(t.post(path, {"lead_id": "0190a5e4-0000-7000-8000-000000000000"}), 404)
    assert "no lead" in doc["detail"]
    doc = problem(t.post(f"{R}/0190a5e4-0000-7000-8000-000000000000/test", {"lead_id": lead}),
                  404)
    assert "no automation rule" in doc["detail"]
    assert fields_of(problem(t.post(path, {"lead_id": lead, "dry": True}), 400)) == {"dry"}
    assert "lead_id" in fields_of(problem(t.post(path, {}), 400))
    assert "lead_id" in fields_of(problem(t.post(path, {"lead_id": 5}), 400))
    assert "event" in fields_of(problem(t.post(path, {"lead_id": lead, "event": 5}), 400))
    doc = problem(t.post(path, {"lead_id": lead, "event": {"type": "x"}}), 400)
    assert fields_of(doc) == {"event.type", "event.event_type"}
    doc = problem(t.post(path, {"lead_id": lead, "event": {"event_type": "x", "metadata": [],
                                                           "source": 1}}), 400)
    assert fields_of(doc) == {"event.metadata", "event.source"}


def test_dry_run_of_an_event_id_that_does_not_exist_is_404(t):
    rule = create(t, trigger_type="event", trigger_config={"event_type": "page_view"})
    lead = new_lead(t)
    doc = problem(t.post(f"{R}/{rule['id']}/test",
                         {"lead_id": lead, "event": "0190a5e4-0000-7000-8000-000000000000"}), 404)
    assert "no event" in doc["detail"]


def test_dry_run_reports_and_changes_nothing(t):
    lead = new_lead(t, first_name="Ada")
    rule = create(t, name="Task at zero", trigger_config={"score_gte": 0},
                  action_config={"title": "Call {lead.first_name}", "due_days": 1})
    path = f"{R}/{rule['id']}/test"
    for _ in range(2):  # the second answer is the same: the first left nothing behind
        r = t.post(path, {"lead_id": lead})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["would_fire"] is True and out["reason"] is None
        assert out["rule_id"] == rule["id"] and out["lead_id"] == lead
        assert out["trigger_key"] == "score_gte:0"
        assert len(out["executions"]) == 1
        ex = out["executions"][0]
        assert ex["rule_id"] == rule["id"] and ex["status"] == "executed"
        assert ex["action_type"] == "create_task" and ex["depth"] == 1
        assert ex["result"]["title"] == "Call Ada" and ex["result"]["task_id"]
        assert "task.created" in {e["type"] for e in out["events"]}
    assert t.get(LOGS).json()["items"] == []
    got = t.get(f"{R}/{rule['id']}").json()
    assert got["execution_count"] == 0 and got["last_executed_at"] is None
    assert t.get("/api/v1/tasks", params={"lead": lead}).json()["items"] == []
    problem(t.get(f"/api/v1/tasks/{ex['result']['task_id']}"), 404)


def test_dry_run_of_a_rule_that_would_not_fire_says_why(t):
    lead = new_lead(t)
    rule = create(t, trigger_config={"score_gte": 50}, is_active=False)
    out = t.post(f"{R}/{rule['id']}/test", {"lead_id": lead}).json()
    assert out["would_fire"] is False and "below 50" in out["reason"]
    assert out["executions"] == [] and out["events"] == []


def test_dry_run_of_an_event_rule_with_a_described_event(t):
    lead = new_lead(t)
    rule = create(t, trigger_type="event", trigger_config={
        "event_type": "form_submit",
        "conditions": [{"field": "metadata.form", "op": "eq", "value": "demo"}]},
        action_type="update_field", action_config={"field": "status", "value": "qualified"})
    path = f"{R}/{rule['id']}/test"
    out = t.post(path, {"lead_id": lead, "event": {"event_type": "form_submit",
                                                   "metadata": {"form": "demo"},
                                                   "utm_source": None}}).json()
    assert out["would_fire"] is True, out
    assert out["executions"][0]["result"] == {"field": "status", "from": "new",
                                              "to": "qualified"}
    out = t.post(path, {"lead_id": lead, "event": {"event_type": "form_submit",
                                                   "metadata": {"form": "newsletter"}}}).json()
    assert out["would_fire"] is False and out["executions"] == []
    # with no event, the lead's latest of the rule's type: it has none
    out = t.post(path, {"lead_id": lead}).json()
    assert out["would_fire"] is False and "form_submit" in out["reason"]
    assert t.lead(lead)["status"] == "new"


def test_dry_run_of_a_merged_lead_uses_its_survivor(t):
    older, newer = new_lead(t), new_lead(t)
    r = t.post(f"/api/v1/leads/{older}/merge", {"other_id": newer})
    assert r.status_code == 200, r.text
    rule = create(t, trigger_config={"score_gte": 0})
    out = t.post(f"{R}/{rule['id']}/test", {"lead_id": newer}).json()
    assert out["lead_id"] == older and out["requested_lead_id"] == newer
    assert out["would_fire"] is True


def test_dry_run_reports_a_failing_action(t):
    lead = new_lead(t)
    rule = create(t, trigger_config={"score_gte": 0}, action_type="move_to_stage",
                  action_config={"stage": "demo", "pipeline": "b2b"})
    out = t.post(f"{R}/{rule['id']}/test", {"lead_id": lead}).json()
    assert out["would_fire"] is True
    [ex] = out["executions"]
    assert ex["status"] == "failed" and "no open deal" in ex["error"] and ex["result"] is None
    assert "automation.executed" not in {e["type"] for e in out["events"]}
    assert t.get(LOGS).json()["items"] == []


def test_dry_run_of_a_stage_or_timer_rule_does_not_crash_the_server(own):
    """The dry run of a stage_entered or time_in_stage rule looks for the lead's deal in the
    rule's stage; binding that query's arguments once read an integer as text."""
    t = own
    lead = new_lead(t)
    r = t.post("/api/v1/deals", {"lead_id": lead, "pipeline": "b2b"})
    assert r.status_code == 201, r.text
    deal = r.json()
    rule = create(t, trigger_type="stage_entered",
                  trigger_config={"pipeline": "b2b", "stage": deal["stage_id"]},
                  action_type="move_to_stage", action_config={"stage": "demo"})
    out = t.post(f"{R}/{rule['id']}/test", {"lead_id": lead}).json()
    assert out["would_fire"] is True, out
    [ex] = out["executions"]
    assert ex["status"] == "executed" and ex["result"]["deal_id"] == deal["id"]
    assert ex["result"]["from_stage"] == "New" and ex["result"]["to_stage"] == "Demo"
    assert "deal.stage_changed" in {e["type"] for e in out["events"]}
    assert t.get(f"/api/v1/deals/{deal['id']}").json()["stage_id"] == deal["stage_id"]
    # a time_in_stage rule: the deal has not been there a day
    rule = create(t, trigger_type="time_in_stage", trigger_config={"days": 1, "pipeline": "b2b"})
    out = t.post(f"{R}/{rule['id']}/test", {"lead_id": lead}).json()
    assert out["would_fire"] is False and out["reason"]


def test_dry_run_shows_the_rules_it_chains(t):
    lead = new_lead(t)
    first = create(t, trigger_config={"score_gte": 0}, action_config={"title": "Call"},
                   is_active=False)
    second = create(t, trigger_type="event", trigger_config={"event_type": "task.created"},
                    action_type="update_field",
                    action_config={"field": "job_title", "value": "Tasked"})
    out = t.post(f"{R}/{first['id']}/test", {"lead_id": lead}).json()
    assert [(e["rule_id"], e["depth"], e["status"]) for e in out["executions"]] == [
        (first["id"], 1, "executed"), (second["id"], 2, "executed")]
    assert t.lead(lead)["job_title"] is None
    assert t.get(LOGS).json()["items"] == []
    assert t.get(f"{R}/{second['id']}").json()["execution_count"] == 0


def test_dry_run_of_a_stored_event(t):
    rule = create(t, trigger_type="event", trigger_config={"event_type": "*"},
                  action_type="update_field", action_config={"field": "phone", "value": "+49 1"},
                  is_active=False)
    ev = t.send("page_view", uniq("ev") + "@acme.example")
    path = f"{R}/{rule['id']}/test"
    out = t.post(path, {"lead_id": ev["lead_id"], "event": ev["id"]}).json()
    assert out["would_fire"] is True and out["trigger_key"] == f"event:{ev['id']}", out
    # no event given: the lead's latest external one
    out = t.post(path, {"lead_id": ev["lead_id"]}).json()
    assert out["would_fire"] is True and out["trigger_key"] == f"event:{ev['id']}", out
    assert t.lead(ev["lead_id"])["phone"] is None


ACTIONS = [
    ("move_to_stage", {"stage": "demo"}),
    ("assign_owner", {"role": "account_executive"}),
    ("send_notification", {"template": "deal_created", "channel": "#sales"}),
    ("create_task", {"title": "{deal.name} for {owner.name}", "assignee": "owner",
                     "due_days": 3}),
    ("sync_moco", {"operation": "create_offer"}),
    ("update_field", {"field": "region", "value": "{lead.company}"}),
    ("route_to_pipeline", {"pipeline": "research"}),
    ("send_webhook", {"url": "https://hooks.example.com/x"}),
]


@pytest.mark.parametrize("action,config", ACTIONS, ids=[a[0] for a in ACTIONS])
def test_dry_run_of_every_action_changes_nothing(t, action, config):
    member(t)
    lead = new_lead(t, company="Acme GmbH", first_name="Ada")
    r = t.post("/api/v1/deals", {"lead_id": lead, "pipeline": "b2b"})
    assert r.status_code == 201, r.text
    before_lead, before_deal = t.lead(lead), t.get(f"/api/v1/deals/{r.json()['id']}").json()
    rule = create(t, trigger_config={"score_gte": 0}, action_type=action, action_config=config)
    out = t.post(f"{R}/{rule['id']}/test", {"lead_id": lead})
    assert out.status_code == 200, out.text
    ex = out.json()["executions"][0]
    assert ex["action_type"] == action and ex["status"] in ("executed", "failed"), ex
    assert (ex["result"] is None) == (ex["status"] == "failed")
    assert t.lead(lead) == before_lead
    assert t.get(f"/api/v1/deals/{before_deal['id']}").json() == before_deal
    assert t.get(LOGS).json()["items"] == []
    assert t.get(f"{R}/{rule['id']}").json()["execution_count"] == 0


def test_time_in_stage_dry_run_then_the_timer_job_then_already_ran(own):
    t = own
    lead = new_lead(t)
    r = t.post("/api/v1/deals", {"lead_id": lead, "pipeline": "b2b"})
    assert r.status_code == 201, r.text
    deal = r.json()
    rule = create(t, trigger_type="time_in_stage", trigger_config={"days": 1, "pipeline": "b2b"},
                  action_config={"title": "Nudge {deal.name}"})
    path = f"{R}/{rule['id']}/test"
    out = t.post(path, {"lead_id": lead}).json()
    assert out["would_fire"] is False and "long enough" in out["reason"]
    with sqlite3.connect(t.s.db, timeout=10) as db:  # the deal entered its stage two days ago
        db.execute("UPDATE deals SET stage_entered_at = stage_entered_at - 172800000"
                   " WHERE id = ?", (deal["id"],))
    out = t.post(path, {"lead_id": lead}).json()
    assert out["would_fire"] is True and out["trigger_key"].startswith(f"time:{deal['id']}:")
    assert out["executions"][0]["result"]["deal_id"] == deal["id"]
    assert t.get(LOGS).json()["items"] == []
    r = t.post("/api/v1/scheduler/jobs/stage_timers/run")
    assert r.status_code == 200, r.text
    [log] = t.get(LOGS, params={"deal": deal["id"]}).json()["items"]
    assert log["rule_id"] == rule["id"] and log["trigger_type"] == "time_in_stage"
    assert log["trigger_key"] == out["trigger_key"] and log["event_id"] is None
    assert [x["title"] for x in t.get("/api/v1/tasks", params={"lead": lead}).json()["items"]] == [
        out["executions"][0]["result"]["title"]]
    out = t.post(path, {"lead_id": lead}).json()
    assert out["would_fire"] is False and "already ran" in out["reason"]
