"""Slack end to end: a local stand-in for Slack's incoming webhooks (webhook_receiver.Receiver,
recording every POST) is SLACK_WEBHOOK_URL, with ENABLE_SLACK_ALERTS on. A lead turning hot and
a routing conflict produce Block Kit messages there; automation's send_notification and the
digest job too; the tenant's "slack" setting sends a named channel elsewhere. The interactions
endpoint, signed with SLACK_SIGNING_SECRET as Slack signs, routes a lead from a conflict
message's button; a bad, missing or stale signature is 401.

Each test works in a tenant of its own; messages are told apart by the lead's email or the
tenant's name in them."""
import hashlib
import hmac
import json
import sqlite3
import time
import urllib.parse
import uuid

import pytest

from conftest import JWT_SECRET, Server, Tenant, fields_of, problem, uniq
from webhook_receiver import Receiver


def forged(value):
    """value with the last digit of its mac changed."""
    return value[:-1] + ("1" if value[-1] == "0" else "0")


def button(tenant_id, lead_id, pipeline_id):
    """A route button's value as leadflow makes it: the ids and a mac keyed with the server's
    secret."""
    head = f"route:{tenant_id}:{lead_id}:{pipeline_id}"
    mac = hmac.new(JWT_SECRET.encode(), head.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{head}:{mac}"

SECRET = "slack-signing-secret-0123456789"
INTERACTIONS = "/api/v1/integrations/slack/interactions"
FORM = "application/x-www-form-urlencoded"
# Six events of 10 points each, intents b2b 40 and research 40: a tie (test_routing.py).
AMBIGUOUS = ["b2b_signal", "research_signal", "b2b_signal", "research_signal", "page_view",
             "page_view"]


@pytest.fixture(scope="module")
def slack():
    with Receiver(default=200) as r:
        yield r


@pytest.fixture(scope="module")
def server(tmp_path_factory, slack):
    s = Server(tmp_path_factory.mktemp("slack"), SLACK_WEBHOOK_URL=slack.url,
               ENABLE_SLACK_ALERTS="1", LEADFLOW_ALLOW_PRIVATE_TARGETS="1",
               SLACK_SIGNING_SECRET=SECRET).start()
    yield s
    rc = s.stop()
    assert rc == 0, "leadflow did not exit cleanly:\n" + s.read_log()[-4000:]


class Team(Tenant):
    """A tenant whose every event scores 10 points; b2b_signal and research_signal add 20 points
    of intent b2b or research (as in test_routing.py)."""

    def __init__(self, server):
        super().__init__(server)
        self.rule(event_type="*", points=10, category="engagement")
        self.intent_rule(event_type="b2b_signal", intent="b2b", points=20)
        self.intent_rule(event_type="research_signal", intent="research", points=20)

    def db(self):
        return sqlite3.connect(self.s.db, timeout=10)

    def tenant_id(self):
        with self.db() as db:
            return db.execute("SELECT id FROM tenants WHERE slug = ?", (self.slug,)).fetchone()[0]

    def name(self):
        return "Test " + self.slug

    def pipeline_id(self, slug):
        items = self.get("/api/v1/pipelines").json()["items"]
        return next(p["id"] for p in items if p["slug"] == slug)

    def deals_of(self, lead_id):
        with self.db() as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(
                "SELECT d.*, p.slug AS pipeline FROM deals d JOIN pipelines p"
                " ON p.id = d.pipeline_id WHERE d.lead_id = ? ORDER BY d.id", (lead_id,))]

    def routing_log(self, lead_id):
        with self.db() as db:
            return db.execute("SELECT kind, decided_by FROM routing_log WHERE lead_id = ?"
                              " ORDER BY created_at, id", (lead_id,)).fetchall()

    def conflict_lead(self):
        """A lead the router sent to manual review (a b2b/research tie): (email, lead id)."""
        email = uniq("amb") + "@corp.example"
        for kind in AMBIGUOUS:
            ev = self.send(kind, email, first_name="Ada", last_name="Lovelace")
        assert ev["result"]["route"] == {"decision": "manual_review", "reason": "ambiguous"}
        return email, ev["lead_id"]

    def wait_event(self, event_id, timeout=15):
        deadline = time.time() + timeout
        while True:
            r = self.get(f"/api/v1/events/{event_id}")
            if r.status_code == 200 and r.json()["status"] == "processed":
                return r.json()
            assert time.time() < deadline, r.text
            time.sleep(0.03)

    def auto(self, trigger_type, trigger_config, action_type, action_config):
        r = self.post("/api/v1/automation/rules", {
            "name": uniq("auto"), "trigger_type": trigger_type, "trigger_config": trigger_config,
            "action_type": action_type, "action_config": action_config})
        assert r.status_code == 201, r.text
        return r.json()

    def delivery(self, match, status="succeeded", timeout=15):
        """Waits until the tenant's slack delivery match(d) accepts has the status."""
        deadline = time.time() + timeout
        while True:
            items = self.get("/api/v1/deliveries?kind=slack&limit=500").json()["items"]
            found = [d for d in items if match(d)]
            if found and found[0]["status"] == status:
                return found[0]
            assert time.time() < deadline, f"no slack delivery {status}: {found or items}"
            time.sleep(0.1)


@pytest.fixture
def t(server):
    return Team(server)


def messages(slack, needle, n=1, timeout=15):
    """The first n messages at the stand-in whose body contains needle, as JSON."""
    got = slack.wait(n, timeout=timeout, match=lambda r: needle.encode() in r.body)
    return [r.json() for r in got]


def block(msg, kind):
    return next((b for b in msg["blocks"] if b["type"] == kind), None)


# --------------------------------------------------------------------------------------------
# signing requests as Slack does

def slack_sign(body: bytes, ts: str, secret=SECRET) -> str:
    base = b"v0:" + ts.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def interact(server, payload, ts=None, secret=SECRET, content_type=FORM, body=None,
             headers=None):
    """POSTs a Slack interaction (form field payload=<JSON>, as Slack sends it), signed."""
    if body is None:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time())) if ts is None else str(ts)
    h = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
         "X-Slack-Signature": slack_sign(body, ts, secret)}
    h.update(headers or {})
    return server.http.post(server.url + INTERACTIONS, data=body, headers=h, timeout=30)


def click(value, user=None):
    """A block_actions payload: the button with value clicked by user."""
    return {"type": "block_actions",
            "user": user or {"id": "U0ADA", "username": "ada", "name": "ada"},
            "team": {"id": "T0TEAM"}, "response_url": "https://hooks.slack.com/actions/x",
            "actions": [{"type": "button", "action_id": "route_lead", "value": value,
                         "block_id": "b1", "action_ts": str(time.time())}]}


# --------------------------------------------------------------------------------------------
# (a) the hot-lead alert

def test_hot_lead_alert_reaches_slack(t, slack):
    t.rule(event_type="page_view", points=50)
    email = uniq("hot") + "@corp.example"
    t.send("page_view", email, first_name="Grace", last_name="Hopper")
    ev = t.send("page_view", email)
    assert ev["result"]["score"]["hot"] is True
    (msg,) = messages(slack, email)
    assert "Grace Hopper" in msg["text"]
    assert block(msg, "header")["text"]["text"] == "🔥 Hot lead"
    fields = [f["text"] for f in block(msg, "section")["fields"]]
    assert "*Name*\nGrace Hopper" in fields and f"*Email*\n{email}" in fields
    assert any(f.startswith("*Score*\n1") and "hot at 80" in f for f in fields)
    assert ev["lead_id"] in block(msg, "context")["elements"][0]["text"]
    (hot,) = t.domain_events("lead.hot", ev["lead_id"])
    d = t.delivery(lambda d: d["event_id"] == hot["id"])
    assert d["target"] == "default" and d["attempts"] == 1


# --------------------------------------------------------------------------------------------
# (b) the routing conflict, and its button end to end

def test_routing_conflict_message_has_a_button_per_candidate(t, slack):
    email, lead_id = t.conflict_lead()
    (msg,) = messages(slack, email)
    assert "Routing conflict" in msg["text"]
    text = block(msg, "section")["text"]["text"]
    assert "Ada Lovelace" in text and email in text and "too close to call" in text
    assert "*b2b*: 40 points" in text and "*research*: 40 points" in text
    buttons = block(msg, "actions")["elements"]
    tid = t.tenant_id()
    want = {button(tid, lead_id, t.pipeline_id(p)): f"Route to {p}"
            for p in ("b2b", "research")}
    assert {b["value"]: b["text"]["text"] for b in buttons} == want
    assert {b["action_id"] for b in buttons} == {"route_lead"}
    (conflict,) = t.domain_events("lead.routing_conflict", lead_id)
    t.delivery(lambda d: d["event_id"] == conflict["id"])
    # the person clicks "Route to research" in Slack
    value = next(b["value"] for b in buttons if b["text"]["text"] == "Route to research")
    r = interact(t.s, click(value))
    assert r.status_code == 200, r.text
    assert r.json()["text"] == f"Routed {email} to research by ada"
    assert t.lead(lead_id)["routing_status"] == "routed"


# --------------------------------------------------------------------------------------------
# (c) interactions

def test_interaction_routes_the_lead_with_a_deal_and_runs_automation(t):
    rule = t.auto("event", {"event_type": "lead.routed"}, "create_task",
                  {"title": "Call {lead.email}"})
    email, lead_id = t.conflict_lead()
    value = button(t.tenant_id(), lead_id, t.pipeline_id('research'))
    r = interact(t.s, click(value))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"response_type": "in_channel", "replace_original": True,
                        "text": f"Routed {email} to research by ada"}
    lead = t.lead(lead_id)
    assert lead["routing_status"] == "routed"
    assert lead["pipeline_id"] == t.pipeline_id("research")
    (deal,) = t.deals_of(lead_id)
    assert deal["pipeline"] == "research" and deal["status"] == "open"
    assert t.routing_log(lead_id) == [("conflict", "router"), ("manual", "slack:ada")]
    (routed,) = t.domain_events("lead.routed", lead_id)
    assert routed["metadata"]["kind"] == "manual" and routed["metadata"]["by"] == "slack:ada"
    assert routed["metadata"]["deal_created"] is True
    # the automation the routing triggers ran in its transaction
    with t.db() as db:
        titles = [r[0] for r in db.execute("SELECT title FROM tasks WHERE lead_id = ?",
                                           (lead_id,))]
    assert f"Call {email}" in titles
    logs = t.get(f"/api/v1/automation/logs?rule={rule['id']}").json()["items"]
    assert len(logs) == 1 and logs[0]["status"] == "executed"

    # a second click (here: another person, on the other button) changes nothing
    other = button(t.tenant_id(), lead_id, t.pipeline_id('b2b'))
    r = interact(t.s, click(other, user={"id": "U0BOB"}))
    assert r.status_code == 200, r.text
    assert r.json()["replace_original"] is False
    assert r.json()["text"] == f"{email} is already routed to research; nothing was changed."
    assert len(t.deals_of(lead_id)) == 1
    assert len(t.routing_log(lead_id)) == 2


def test_interaction_by_user_id_when_slack_sends_no_name(t):
    email, lead_id = t.conflict_lead()
    value = button(t.tenant_id(), lead_id, t.pipeline_id('b2b'))
    r = interact(t.s, click(value, user={"id": "U0NONAME", "team_id": "T0TEAM"}))
    assert r.status_code == 200 and r.json()["text"] == f"Routed {email} to b2b by U0NONAME"
    assert t.routing_log(lead_id)[-1] == ("manual", "slack:U0NONAME")


def test_interaction_signature_bad_missing_or_stale_is_401(t):
    email, lead_id = t.conflict_lead()
    value = button(t.tenant_id(), lead_id, t.pipeline_id('b2b'))
    now = int(time.time())
    for kw in ({"secret": "not-the-secret"},
               {"ts": now - 301},  # older than five minutes: a replay
               {"ts": now + 301},
               {"ts": "soon"},
               {"headers": {"X-Slack-Signature": "v0=" + "0" * 64}},
               {"headers": {"X-Slack-Signature": ""}}):
        doc = problem(interact(t.s, click(value), **kw), 401)
        assert "signature" in doc["detail"]
    body = urllib.parse.urlencode({"payload": json.dumps(click(value))}).encode()
    r = t.s.http.post(t.s.url + INTERACTIONS, data=body, headers={"Content-Type": FORM},
                      timeout=30)
    problem(r, 401)
    # a signed body changed on the way
    ts = str(now)
    sig = slack_sign(body, ts)
    r = t.s.http.post(t.s.url + INTERACTIONS, data=body.replace(b"ada", b"eve"),
                      headers={"Content-Type": FORM, "X-Slack-Request-Timestamp": ts,
                               "X-Slack-Signature": sig}, timeout=30)
    problem(r, 401)
    # nothing was routed
    assert t.lead(lead_id)["routing_status"] == "manual_review"
    assert t.deals_of(lead_id) == []


def test_interaction_that_cannot_route_answers_200_with_the_reason(t, server):
    email, lead_id = t.conflict_lead()
    tid, b2b = t.tenant_id(), t.pipeline_id("b2b")
    cases = [
        (button(tid, uuid.uuid4(), b2b), "That lead no longer exists"),
        (button(tid, lead_id, uuid.uuid4()), "That pipeline no longer exists"),
        (button(uuid.uuid4(), lead_id, b2b), "tenant is gone"),
        ("route:nope", "not one leadflow made"),
        (f"route:{tid}:{lead_id}:{b2b}:extra", "not one leadflow made"),
        (f"route:{tid}:{lead_id}:{b2b}", "not one leadflow made"),  # unsigned
        (forged(button(tid, lead_id, b2b)), "not one leadflow made"),
        ("", "not one leadflow made"),
    ]
    # another tenant's lead is not found through this tenant's button
    other = Team(server)
    o_email, o_lead = other.conflict_lead()
    cases.append((button(tid, o_lead, b2b), "That lead no longer exists"))
    for value, reason in cases:
        r = interact(t.s, click(value))
        assert r.status_code == 200, r.text
        assert r.json()["replace_original"] is False and reason in r.json()["text"], value
    assert t.lead(lead_id)["routing_status"] == "manual_review"
    assert other.lead(o_lead)["routing_status"] == "manual_review"


def test_interaction_other_payloads(t):
    # another kind of interaction, or another action: nothing to do, an empty 200
    r = interact(t.s, {"type": "view_submission", "user": {"id": "U1"}})
    assert r.status_code == 200 and r.content == b""
    r = interact(t.s, {"type": "block_actions", "user": {"id": "U1"},
                       "actions": [{"action_id": "something_else", "value": "x"}]})
    assert r.status_code == 200 and r.content == b""
    # signed, but not Slack's form
    problem(interact(t.s, None, body=b'{"type": "block_actions"}',
                     content_type="application/json"), 415)
    problem(interact(t.s, None, body=b"payload=%7Bnot-json"), 400)
    problem(interact(t.s, None, body=b"other=1"), 400)
    problem(interact(t.s, None, body=b"payload=%zz"), 400)
    problem(interact(t.s, None, body=b"payload=%5B1%5D"), 400)  # not an object


def test_interactions_without_signing_secret_is_503(tmp_path):
    s = Server(tmp_path).start()
    try:
        r = interact(s, click("route:x"))
        doc = problem(r, 503)
        assert doc["detail"].startswith("Slack is not configured")
    finally:
        assert s.stop() == 0


# --------------------------------------------------------------------------------------------
# (d) automation's notifications, and the channel setting

def test_send_notification_reaches_slack_and_its_channel(t, slack):
    with Receiver(default=200) as sales:
        r = t.put("/api/v1/settings/slack", {"channels": {"#sales": sales.url}})
        assert r.status_code == 200, r.text
        assert r.json()["channels"] == {"sales": sales.url}
        t.auto("event", {"event_type": "demo_request"}, "send_notification",
               {"text": "Demo wanted by {lead.email} & <co>"})
        t.auto("event", {"event_type": "demo_request"}, "send_notification",
               {"channel": "#sales", "text": "Sales: {lead.email}"})
        t.auto("event", {"event_type": "demo_request"}, "send_notification",
               {"channel": "#nowhere", "text": "Elsewhere: {lead.email}"})
        email = uniq("demo") + "@corp.example"
        t.send("demo_request", email)
        (msg,) = messages(slack, f"Demo wanted by {email}")
        assert "channel" not in msg
        section = block(msg, "section")["text"]
        assert section == {"type": "mrkdwn", "text": f"Demo wanted by {email} &amp; &lt;co&gt;"}
        (msg,) = messages(sales, f"Sales: {email}")
        assert block(msg, "section")["text"]["text"] == f"Sales: {email}"
        # a channel without a URL of its own goes to the default
        messages(slack, f"Elsewhere: {email}")
        assert not [r for r in slack.requests if f"Sales: {email}".encode() in r.body]
        d = t.delivery(lambda d: d["payload"].get("text") == f"Sales: {email}")
        assert d["target"] == "#sales"
        # the attempt log names the channel, never its URL (a credential viewers could read)
        full = wait_status(t, d["id"], "succeeded")
        assert [x["target"] for x in full["attempt_log"]] == ["#sales"]


def wait_status(t, delivery_id, status, timeout=10):
    deadline = time.time() + timeout
    while True:
        d = t.get(f"/api/v1/deliveries/{delivery_id}").json()
        if d["status"] == status or time.time() > deadline:
            assert d["status"] == status, d
            return d
        time.sleep(0.05)


def test_an_empty_notification_is_given_up_unsent(t, slack):
    t.auto("event", {"event_type": "quiet"}, "send_notification", {"text": "{lead.first_name}"})
    t.send("quiet", uniq("q") + "@corp.example")
    d = t.delivery(lambda d: d["payload"].get("text") == "", status="dead")
    d = t.get(f"/api/v1/deliveries/{d['id']}").json()
    assert d["last_error"] == "the message is empty" and len(d["attempt_log"]) == 1


def test_slack_setting(t, server):
    doc = t.get("/api/v1/settings/slack").json()
    assert doc == {"default_url": None, "channels": {}, "env_webhook_configured": True,
                   "alerts_enabled": True, "interactions_configured": True}
    url = "https://hooks.slack.com/services/T0/B0/abc"
    r = t.put("/api/v1/settings/slack", {"default_url": url,
                                         "channels": {"sales": url + "1", "#ops": url + "2"}})
    assert r.status_code == 200, r.text
    assert r.json()["default_url"] == url
    assert r.json()["channels"] == {"sales": url + "1", "ops": url + "2"}
    assert t.get("/api/v1/settings/slack").json()["channels"]["ops"] == url + "2"
    # only the keys given change; null clears the default
    r = t.put("/api/v1/settings/slack", {"default_url": None})
    assert r.status_code == 200 and r.json()["default_url"] is None
    assert r.json()["channels"] == {"sales": url + "1", "ops": url + "2"}
    # bad input: 400 naming each field, nothing changed
    bad = {"default_url": "ftp://example.com/x",
           "channels": {"default": url, "x" * 81: url, "ok": "not a url",
                        "self": server.url + "/x", "sales": url, "#sales": url},
           "colour": "red"}
    doc = problem(t.put("/api/v1/settings/slack", bad), 400)
    assert fields_of(doc) == {"default_url", "channels.default", "channels." + "x" * 80,
                              "channels.ok", "channels.self", "channels.#sales", "colour"}
    problem(t.put("/api/v1/settings/slack", {"channels": ["a"]}), 400)
    problem(t.put("/api/v1/settings/slack", {"channels": {f"c{i}": url for i in range(51)}}), 400)
    problem(t.put("/api/v1/settings/slack", {"default_url": 7}), 400)
    problem(t.put("/api/v1/settings/slack", {"default_url": url + "/" + "x" * 2000}), 400)
    assert t.get("/api/v1/settings/slack").json()["channels"] == {"sales": url + "1",
                                                                 "ops": url + "2"}
    # webhook URLs are credentials: admins only
    for role in ("manager", "sales", "viewer"):
        problem(server.get("/api/v1/settings/slack", role=role, tenant=t.slug), 403)
        problem(server.put("/api/v1/settings/slack", {"default_url": url}, role=role,
                           tenant=t.slug), 403)


# --------------------------------------------------------------------------------------------
# (e) the digest

def test_digest_job_posts_the_tenants_day(t, slack):
    # nothing routes (no deals but the ones made here); page_view makes a lead hot
    assert t.put("/api/v1/settings/routing", {"min_score": 100000, "conflict_min_score": 100000,
                                              "discovery_min_score": 100000}).status_code == 200
    t.rule(event_type="page_view", points=50)
    leads = []
    for source in ("google", "google", "news<letter>"):
        ev = t.s.ingest({"event_type": "signup", "lead": {"email": uniq("d") + "@corp.example"},
                         "utm": {"source": source}}, tenant=t.slug)
        assert ev.status_code == 202, ev.text
        leads.append(t.wait_event(ev.json()["event_id"])["lead_id"])
    email = t.lead(leads[0])["email"]
    t.send("page_view", email)
    t.send("page_view", email)  # 110 points: hot
    r = t.post("/api/v1/leads", {"email": uniq("api") + "@corp.example"})  # no source
    assert r.status_code == 201, r.text
    won = t.post("/api/v1/deals", {"lead_id": leads[1], "pipeline": "b2b",
                                   "value_cents": 1250050}).json()
    t.post("/api/v1/deals", {"lead_id": leads[2], "pipeline": "b2b", "value_cents": 300000})
    r = t.post(f"/api/v1/deals/{won['id']}/close", {"outcome": "won"})
    assert r.status_code == 200, r.text
    t.wait_idle()

    r = t.post("/api/v1/scheduler/jobs/slack_digest/run")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["ok"] is True and out["result"]["messages"] == 1
    digest = out["result"]["digest"]
    assert digest["new_leads"] == 4 and digest["hot_leads"] == 1
    assert digest["deals_created"] == 2
    assert digest["deals_won"] == [{"currency": "EUR", "deals": 1, "value_cents": 1250050}]
    assert digest["open_pipeline"] == [{"currency": "EUR", "deals": 1, "value_cents": 300000}]
    assert digest["top_sources"][0] == {"source": "google", "leads": 2}

    (msg,) = messages(slack, t.name())
    assert msg["text"].startswith("Daily digest: 4 new leads, 1 hot, 2 deals created, 1 won")
    assert block(msg, "header")["text"]["text"] == "📊 Daily digest"
    fields = [f["text"] for f in block(msg, "section")["fields"]]
    assert fields == ["*New leads*\n4", "*Hot leads*\n1", "*Deals created*\n2",
                      "*Deals won*\n1 deal · 12,500.50 EUR",
                      "*Open pipeline*\n1 deal · 3,000.00 EUR"]
    top = [b for b in msg["blocks"] if b["type"] == "section"][1]["text"]["text"]
    assert top.splitlines()[1] == "1. google — 2"
    assert "news&lt;letter&gt; — 1" in top and "_no source_ — 1" in top
    t.delivery(lambda d: d["payload"].get("text", "").startswith("Daily digest")
               and t.name() in json.dumps(d["payload"]))


def test_digest_goes_to_the_tenants_own_url_and_is_listed(t, slack):
    with Receiver(default=200) as own:
        assert t.put("/api/v1/settings/slack", {"default_url": own.url}).status_code == 200
        r = t.post("/api/v1/scheduler/jobs/slack_digest/run")
        assert r.status_code == 200 and r.json()["result"]["messages"] == 1
        (msg,) = messages(own, t.name())
        assert msg["text"].startswith("Daily digest: 0 new leads")
        top = [b for b in msg["blocks"] if b["type"] == "section"][1]["text"]["text"]
        assert "No new leads." in top
    assert not [r for r in slack.requests if t.name().encode() in r.body]
    job = t.get("/api/v1/scheduler/jobs/slack_digest").json()
    assert job["schedule"] == "0 8 * * 1-5" and job["enabled"] is True
