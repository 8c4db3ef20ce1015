"""Moco end to end against a local stand-in (MOCO_BASE_URL): a won deal creates the customer and
the offer, sync_moco create_invoice the invoice, a 500 is retried without creating twice,
ENABLE_MOCO_SYNC=0 keeps the work waiting; the payment webhook (signature, shared secret,
unknown and unpaid invoices, repeats) marks the deal paid and emits deal.paid; the
integrations status shows configuration, backlog and the last success."""
import concurrent.futures
import datetime
import hashlib
import hmac
import http.server
import json
import sqlite3
import threading
import time
import uuid

import pytest

from conftest import Server, Tenant, fields_of, problem, uniq

KEY = "moco-test-key-0123"
SECRET = "moco-hook-secret-4567"
WEBHOOK = "/api/v1/integrations/moco/webhook"
STATUS = "/api/v1/integrations/status"


class Moco:
    """A Moco stand-in on 127.0.0.1: POST /companies, /offers and /invoices create (ids from
    1001, 2001 and 3001 on) when the request carries `Authorization: Token token=KEY`; other
    requests are recorded and answered 404. fail[path] = n answers the next n requests to
    path with 500. Stops with the test."""

    FIRST = {"/companies": 1001, "/offers": 2001, "/invoices": 3001}

    def __init__(self):
        self.requests = []
        self.fail = {}
        self.next = dict(self.FIRST)
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def answer(self, code, doc):
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?", 1)[0]
                if path.startswith("/api/v1"):
                    path = path[len("/api/v1"):]
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                auth_ok = self.headers.get("Authorization") == f"Token token={KEY}"
                with outer.lock:
                    rec = {"method": self.command, "path": path, "body": body,
                           "auth_ok": auth_ok, "status": None}
                    outer.requests.append(rec)
                    if not auth_ok:
                        rec["status"] = 401
                    elif outer.fail.get(path, 0) > 0:
                        outer.fail[path] -= 1
                        rec["status"] = 500
                    elif self.command == "POST" and path in outer.next:
                        rec["status"] = 200
                        rec["id"] = outer.next[path]
                        outer.next[path] += 1
                    else:
                        rec["status"] = 404
                if rec["status"] == 200:
                    self.answer(200, {**(body if isinstance(body, dict) else {}), "id": rec["id"]})
                else:
                    self.answer(rec["status"], {"message": f"stand-in says {rec['status']}"})

            do_POST = do_GET = do_PUT = do_PATCH = handle_any

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def calls(self, path=None, status=None):
        with self.lock:
            return [r for r in self.requests if (path is None or r["path"] == path)
                    and (status is None or r["status"] == status)]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def moco():
    m = Moco()
    yield m
    m.stop()


def moco_server(fresh_server, moco, sync=1, **env):
    fresh_server.env.update({"MOCO_API_KEY": KEY, "MOCO_BASE_URL": moco.base_url,
                             "ENABLE_MOCO_SYNC": str(sync), "MOCO_WEBHOOK_SECRET": SECRET,
                             "LEADFLOW_ALLOW_PRIVATE_TARGETS": "1"})
    fresh_server.env.update({k: str(v) for k, v in env.items()})
    return fresh_server.start()


def wait_for(what, fn, timeout=20):
    deadline = time.time() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def customer_with_deal(t, value_cents=1250050):
    """A lead of a new organization (from the event's company) with an open b2b deal.
    Returns (lead, deal)."""
    email = f"{uniq('buyer')}@acme-widgets.example"
    ev = t.send("hello", email, company="Acme Widgets " + uniq("co"))
    lead = t.lead(ev["lead_id"])
    assert lead["organization_id"], lead
    r = t.post("/api/v1/deals", {"lead_id": lead["id"], "pipeline": "b2b",
                                 "value_cents": value_cents})
    assert r.status_code == 201, r.text
    return lead, r.json()


def win(t, deal):
    r = t.post(f"/api/v1/deals/{deal['id']}/close", {"outcome": "won"})
    assert r.status_code == 200, r.text
    return r.json()


def advance_clock(s, seconds):
    """Moves the server's test clock on (PUT /api/v1/test/clock)."""
    now = s.get("/api/v1/test/clock").json()["now"]
    at = datetime.datetime.fromisoformat(now.replace("Z", "+00:00"))
    later = (at + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    r = s.put("/api/v1/test/clock", {"now": later})
    assert r.status_code == 200, r.text


def all_sent(t):
    """The tenant's Moco deliveries once there are some and every one succeeded, else None."""
    got = moco_deliveries(t)
    return got if got and all(x["status"] == "succeeded" for x in got) else None


def deal_of(t, deal_id):
    r = t.get(f"/api/v1/deals/{deal_id}")
    assert r.status_code == 200, r.text
    return r.json()


def org_of(t, org_id):
    r = t.get(f"/api/v1/organizations/{org_id}")
    assert r.status_code == 200, r.text
    return r.json()


def moco_deliveries(t, status=None):
    q = "kind=moco&limit=500" + (f"&status={status}" if status else "")
    r = t.get(f"/api/v1/deliveries?{q}")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def signed(body: bytes, secret=SECRET):
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def hook(s, doc, event="pay", target="Invoice", signature=True, headers=None, raw=None):
    body = raw if raw is not None else json.dumps(doc).encode()
    h = {"Content-Type": "application/json", "X-Moco-Event": event, "X-Moco-Target": target,
         "X-Moco-Timestamp": str(int(time.time() * 1000)), "X-Moco-User-Id": "933613686"}
    if signature is True:
        h["X-Moco-Signature"] = signed(body)
    elif signature:
        h["X-Moco-Signature"] = signature
    h.update(headers or {})
    return s.http.post(s.url + WEBHOOK, data=body, headers=h, timeout=30)


def paid_events(t, lead_id):
    return t.domain_events("deal.paid", lead_id)


# ---- creating customer, offer and invoice

def test_a_won_deal_creates_the_customer_and_the_offer(fresh_server, moco):
    s = moco_server(fresh_server, moco)
    t = Tenant(s)
    lead, deal = customer_with_deal(t)
    win(t, deal)
    d = wait_for("the offer id", lambda: deal_of(t, deal["id"])["moco_offer_id"] and
                 deal_of(t, deal["id"]))
    assert d["moco_offer_id"] == "2001" and d["moco_invoice_id"] is None
    assert org_of(t, lead["organization_id"])["moco_id"] == "1001"
    companies, offers = moco.calls("/companies"), moco.calls("/offers")
    assert [c["status"] for c in companies] == [200] and [o["status"] for o in offers] == [200]
    assert all(r["auth_ok"] and r["method"] == "POST" for r in moco.requests)
    assert companies[0]["body"]["name"].startswith("Acme Widgets")
    assert companies[0]["body"]["type"] == "customer"
    assert offers[0]["body"]["company_id"] in (1001, "1001")  # the customer just created
    assert moco.calls("/invoices") == []
    done = wait_for("deliveries succeeded", lambda: all_sent(t))
    assert len(done) == 2
    # a try records the URL it called
    for x in done:
        log = t.get(f"/api/v1/deliveries/{x['id']}").json()["attempt_log"]
        assert log and all(a["target"].startswith(moco.base_url) for a in log), log


def test_the_moco_setting_switches_the_work_of_a_won_deal(fresh_server, moco):
    s = moco_server(fresh_server, moco)
    t = Tenant(s)
    assert t.get("/api/v1/settings/moco").json() == {"create_on_won": True}
    for bad in ({"create_on_won": "yes"}, {"create_on_won": True, "x": 1}, {}):
        r = t.put("/api/v1/settings/moco", bad)
        assert r.status_code == 400, r.text
    assert t.get("/api/v1/settings/moco").json() == {"create_on_won": True}
    r = t.put("/api/v1/settings/moco", {"create_on_won": False})
    assert r.status_code == 200 and r.json() == {"create_on_won": False}
    lead, deal = customer_with_deal(t)
    win(t, deal)
    time.sleep(0.5)
    assert moco_deliveries(t) == [] and moco.requests == []


def test_sync_moco_create_invoice_creates_customer_offer_and_invoice_once(fresh_server, moco):
    s = moco_server(fresh_server, moco)
    t = Tenant(s)
    r = t.post("/api/v1/automation/rules", {
        "name": "invoice", "trigger_type": "event", "trigger_config": {"event_type": "bill_me"},
        "action_type": "sync_moco", "action_config": {"operation": "create_invoice"}})
    assert r.status_code == 201, r.text
    lead, deal = customer_with_deal(t)
    t.send("bill_me", lead["email"])
    d = wait_for("the invoice id", lambda: deal_of(t, deal["id"])["moco_invoice_id"] and
                 deal_of(t, deal["id"]))
    assert d["moco_invoice_id"] == "3001" and d["moco_offer_id"] == "2001"
    assert org_of(t, lead["organization_id"])["moco_id"] == "1001"
    assert [len(moco.calls(p, 200)) for p in ("/companies", "/offers", "/invoices")] == [1, 1, 1]
    invoice = moco.calls("/invoices")[0]["body"]
    assert invoice["customer_id"] in (1001, "1001"), invoice
    # the rule firing again finds the invoice stored: nothing more is sent
    t.send("bill_me", lead["email"])
    time.sleep(1.5)
    assert [len(moco.calls(p)) for p in ("/companies", "/offers", "/invoices")] == [1, 1, 1]


def test_deal_won_and_an_invoice_rule_on_it_create_each_thing_once(fresh_server, moco):
    """The relay's customer and offer and a rule's invoice for the same won deal: three
    deliveries about one organization and deal must not create anything twice."""
    s = moco_server(fresh_server, moco)
    t = Tenant(s)
    r = t.post("/api/v1/automation/rules", {
        "name": "invoice on won", "trigger_type": "event",
        "trigger_config": {"event_type": "deal.won"}, "action_type": "sync_moco",
        "action_config": {"operation": "create_invoice"}})
    assert r.status_code == 201, r.text
    lead, deal = customer_with_deal(t)
    win(t, deal)
    d = wait_for("the invoice id", lambda: deal_of(t, deal["id"])["moco_invoice_id"] and
                 deal_of(t, deal["id"]))
    wait_for("moco deliveries done", lambda: all_sent(t))
    assert (d["moco_offer_id"], d["moco_invoice_id"]) == ("2001", "3001")
    assert [len(moco.calls(p, 200)) for p in ("/companies", "/offers", "/invoices")] == [1, 1, 1]


def test_a_500_is_retried_without_creating_twice(fresh_server, moco):
    s = moco_server(fresh_server, moco)
    t = Tenant(s)
    moco.fail["/offers"] = 1
    lead, deal = customer_with_deal(t)
    win(t, deal)
    wait_for("the failed offer", lambda: moco.calls("/offers", 500))
    wait_for("the failure recorded", lambda: moco_deliveries(t, "failed"))
    assert org_of(t, lead["organization_id"])["moco_id"] == "1001"
    assert deal_of(t, deal["id"])["moco_offer_id"] is None
    # the next try is due 5 s (±20%) later: move the clock past it
    advance_clock(s, 10)
    d = wait_for("the offer id", lambda: deal_of(t, deal["id"])["moco_offer_id"] and
                 deal_of(t, deal["id"]), timeout=30)
    assert d["moco_offer_id"] == "2001"
    assert len(moco.calls("/companies", 200)) == 1 and len(moco.calls("/offers", 200)) == 1
    assert len(moco.calls("/offers", 500)) == 1
    wait_for("moco deliveries done", lambda: all_sent(t))
    offer = [x for x in moco_deliveries(t) if x["target"] == "/offers"]
    assert len(offer) == 1, moco_deliveries(t)
    log = t.get(f"/api/v1/deliveries/{offer[0]['id']}").json()["attempt_log"]
    assert [a["status_code"] for a in log][-2:] == [500, 200], log
    # the status shows the error and the later success
    moco_status = t.get(STATUS).json()["integrations"]["moco"]
    assert moco_status["last_error"] and moco_status["last_error_at"]
    assert moco_status["last_success_at"] >= moco_status["last_error_at"]


def test_sync_off_keeps_the_work_waiting_until_switched_on(fresh_server, moco):
    s = moco_server(fresh_server, moco, sync=0)
    t = Tenant(s)
    lead, deal = customer_with_deal(t)
    win(t, deal)
    waiting = wait_for("moco deliveries", lambda: moco_deliveries(t))
    time.sleep(2)
    assert moco.requests == []
    waiting = moco_deliveries(t)
    assert len(waiting) == 2 and all(x["status"] == "pending" and x["attempts"] == 0
                                     for x in waiting), waiting
    st = t.get(STATUS).json()["integrations"]["moco"]
    assert st["configured"] is True and st["enabled"] is False
    assert st["backlog"] == 2 and st["dead"] == 0 and st["last_success_at"] is None
    # switched on, the same deliveries go out
    s.restart(ENABLE_MOCO_SYNC=1)
    d = wait_for("the offer id", lambda: deal_of(t, deal["id"])["moco_offer_id"] and
                 deal_of(t, deal["id"]))
    assert d["moco_offer_id"] == "2001"
    assert sorted(x["id"] for x in moco_deliveries(t, "succeeded")) == \
        sorted(x["id"] for x in waiting)


# ---- the payment webhook

@pytest.fixture(scope="module")
def hooks_server(tmp_path_factory):
    """A server with the webhook secret and no dispatcher (nothing is sent to Moco here)."""
    s = Server(tmp_path_factory.mktemp("lf"), MOCO_WEBHOOK_SECRET=SECRET,
               LEADFLOW_DISPATCHER=0).start()
    yield s
    rc = s.stop()
    assert rc == 0, "leadflow did not exit cleanly:\n" + s.read_log()[-4000:]


def invoiced(t, invoice_id):
    """A won deal whose Moco invoice is invoice_id (stored as the dispatcher stores it)."""
    lead, deal = customer_with_deal(t)
    win(t, deal)
    with sqlite3.connect(t.s.db, timeout=10) as db:
        db.execute("UPDATE deals SET moco_offer_id = ?, moco_invoice_id = ? WHERE id = ?",
                   (str(invoice_id + 100000), str(invoice_id), deal["id"]))
    return lead, deal


def new_invoice_id():
    return 5_000_000 + uuid.uuid4().int % 1_000_000_000


def test_payment_marks_the_deal_paid_once_and_emits_deal_paid(hooks_server):
    t = Tenant(hooks_server)
    r = t.post("/api/v1/automation/rules", {
        "name": "thanks", "trigger_type": "event", "trigger_config": {"event_type": "deal.paid"},
        "action_type": "create_task", "action_config": {"title": "Thank {lead.email}"}})
    assert r.status_code == 201, r.text
    inv = new_invoice_id()
    lead, deal = invoiced(t, inv)
    r = hook(hooks_server, {"id": inv, "status": "paid", "gross_total": 14875.6,
                            "currency": "EUR", "title": "Invoice"})
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "paid", "deal_id": deal["id"]}
    d = deal_of(t, deal["id"])
    assert d["paid_at"] is not None and d["status"] == "won"
    events = paid_events(t, lead["id"])
    assert len(events) == 1
    data = events[0]["metadata"]
    assert data["deal_id"] == deal["id"] and data["moco_invoice_id"] == str(inv)
    assert data["amount"] == 14875.6 and data["currency"] == "EUR"
    assert data["deal"]["id"] == deal["id"]
    # automation ran in the same transaction: the rule on deal.paid made its task
    tasks = t.get("/api/v1/tasks", params={"lead_id": lead["id"]}).json()["items"]
    assert [x["title"] for x in tasks] == [f"Thank {lead['email']}"]
    # Moco sends the payment again (a retry, or the "update" that follows): nothing changes
    for event in ("pay", "update"):
        r = hook(hooks_server, {"id": inv, "status": "paid"}, event=event)
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "already_paid", "deal_id": deal["id"]}
    assert deal_of(t, deal["id"])["paid_at"] == d["paid_at"]
    assert len(paid_events(t, lead["id"])) == 1


def test_the_event_pay_counts_as_paid_and_the_shared_secret_header_works(hooks_server):
    t = Tenant(hooks_server)
    inv = new_invoice_id()
    lead, deal = invoiced(t, inv)
    # status not paid yet, but the event says "pay"; the id as a string; no signature
    r = hook(hooks_server, {"id": str(inv), "status": "sent"}, event="pay", signature=None,
             headers={"X-Leadflow-Webhook-Secret": SECRET})
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    assert deal_of(t, deal["id"])["paid_at"] is not None


def test_one_payment_delivered_many_times_at_once_counts_once(hooks_server):
    t = Tenant(hooks_server)
    inv = new_invoice_id()
    lead, deal = invoiced(t, inv)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        got = list(pool.map(lambda _: hook(hooks_server, {"id": inv, "status": "paid"}),
                            range(10)))
    assert all(r.status_code == 200 for r in got), [r.text for r in got]
    assert sorted(r.json()["status"] for r in got) == ["already_paid"] * 9 + ["paid"]
    assert len(paid_events(t, lead["id"])) == 1


def test_a_body_over_256_kib_is_413(hooks_server):
    raw = json.dumps({"id": 1, "status": "paid", "pad": "x" * (256 * 1024)}).encode()
    problem(hook(hooks_server, None, raw=raw), 413)


def test_unpaid_unknown_and_other_targets_are_ignored(hooks_server):
    t = Tenant(hooks_server)
    inv = new_invoice_id()
    lead, deal = invoiced(t, inv)
    for doc, event, target, reason in [
            ({"id": inv, "status": "sent"}, "update", "Invoice", "not paid"),
            ({"id": inv, "status": "partially_paid"}, "update", "Invoice", "not paid"),
            ({"id": inv, "status": "paid"}, "update", "Project", "not an invoice"),
            ({"id": new_invoice_id(), "status": "paid"}, "pay", "Invoice", "no deal")]:
        r = hook(hooks_server, doc, event=event, target=target)
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "ignored" and reason in r.json()["reason"], r.text
    assert deal_of(t, deal["id"])["paid_at"] is None
    assert paid_events(t, lead["id"]) == []


def test_bad_or_missing_secret_is_401_and_changes_nothing(hooks_server):
    t = Tenant(hooks_server)
    inv = new_invoice_id()
    lead, deal = invoiced(t, inv)
    doc = {"id": inv, "status": "paid"}
    body = json.dumps(doc).encode()
    for kw in [dict(signature=None),
               dict(signature=signed(body, "wrong-secret")),
               dict(signature="sha256=" + signed(body)),
               dict(signature=signed(body)[:-2]),
               dict(signature=signed(b'{"id": 1, "status": "paid"}')),  # another body's
               dict(signature=None, headers={"X-Leadflow-Webhook-Secret": SECRET + "x"}),
               dict(signature=None, headers={"X-Leadflow-Webhook-Secret": ""}),
               dict(signature=None, headers={"Authorization": f"Bearer {SECRET}"})]:
        doc401 = problem(hook(hooks_server, doc, **kw), 401)
        assert "X-Moco-Signature" in doc401["detail"], kw
    # a bearer token is no way in either
    r = hooks_server.post(WEBHOOK, doc)
    assert r.status_code == 401, r.text
    assert deal_of(t, deal["id"])["paid_at"] is None
    # an upper-case hex signature is the same signature
    r = hook(hooks_server, doc, signature=signed(body).upper())
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text


def test_malformed_bodies_are_400_after_authentication(hooks_server):
    for raw in (b"", b"{", b"[1, 2]", b'"paid"', b'{"status": "paid"}', b'{"id": null}',
                b'{"id": -3, "status": "paid"}', b'{"id": 1.5, "status": "paid"}',
                b'{"id": "", "status": "paid"}', b'{"id": {"n": 1}, "status": "paid"}',
                b'{"id": "' + b"9" * 65 + b'", "status": "paid"}'):
        r = hook(hooks_server, None, raw=raw)
        doc = problem(r, 400)
        if raw.startswith(b"{") and raw != b"{":
            assert fields_of(doc) == {"id"}, (raw, doc)
    # unauthenticated garbage is a 401, not a 400: nothing is parsed before the secret
    r = hook(hooks_server, None, raw=b"{", signature="00" * 32)
    problem(r, 401)


def test_not_configured_is_503(fresh_server):
    s = fresh_server.start()
    doc = {"id": 1, "status": "paid"}
    body = json.dumps(doc).encode()
    r = s.http.post(s.url + WEBHOOK, data=body, timeout=30,
                    headers={"Content-Type": "application/json", "X-Moco-Target": "Invoice",
                             "X-Moco-Signature": signed(body)})
    d = problem(r, 503)
    assert "Moco webhook is not configured" in d["detail"]
    st = s.get(STATUS).json()["integrations"]
    assert st["moco"]["configured"] is False and st["moco"]["payment_webhook"] is False


# ---- the integrations status

def test_status_counts_the_tenants_backlog_and_reads_the_last_results(hooks_server):
    t = Tenant(hooks_server)
    other = Tenant(hooks_server)
    with sqlite3.connect(hooks_server.db, timeout=10) as db:
        tid = {slug: db.execute("SELECT id FROM tenants WHERE slug = ?", (slug,)).fetchone()[0]
               for slug in (t.slug, other.slug)}
        now = int(time.time() * 1000)
        rows = {"webhook": ["pending", "pending", "failed", "in_flight", "dead", "succeeded"],
                "slack": ["dead", "dead", "succeeded"],
                "moco": ["failed"]}
        for kind, statuses in rows.items():
            for st in statuses:
                db.execute("INSERT INTO deliveries (id, tenant_id, kind, target, payload, status,"
                           " created_at, updated_at) VALUES (?, ?, ?, 'x', '{}', ?, ?, ?)",
                           (str(uuid.uuid4()), tid[t.slug], kind, st, now, now))
        db.execute("INSERT INTO deliveries (id, tenant_id, kind, target, payload, status,"
                   " created_at, updated_at) VALUES (?, ?, 'moco', 'x', '{}', 'pending', ?, ?)",
                   (str(uuid.uuid4()), tid[other.slug], now, now))
        db.execute("INSERT INTO integration_status (tenant_id, kind, last_success_at,"
                   " last_error, last_error_at) VALUES (?, 'webhook', ?, 'HTTP 503', ?)",
                   (tid[t.slug], 1795500000000, 1795500060000))
        db.execute("INSERT INTO integration_status (tenant_id, kind, last_success_at)"
                   " VALUES (?, 'moco', ?)", (tid[other.slug], 1795500000000))
        for active in (1, 1, 0):
            db.execute("INSERT INTO subscriptions (id, tenant_id, url, secret, is_active,"
                       " created_at, updated_at) VALUES (?, ?, 'https://x.example/h',"
                       " 'whsec_x', ?, ?, ?)", (str(uuid.uuid4()), tid[t.slug], active, now, now))
        db.execute("UPDATE settings SET value = ?, updated_at = ? WHERE tenant_id = ?"
                   " AND key = 'slack'",
                   (json.dumps({"channels": {"sales": "https://hooks.slack.example/s"}}), now,
                    tid[t.slug]))
    r = t.get(STATUS)
    assert r.status_code == 200, r.text
    got = r.json()["integrations"]
    assert set(got) == {"webhook", "slack", "moco"}
    wh, sl, mo = got["webhook"], got["slack"], got["moco"]
    assert wh["configured"] is True and wh["enabled"] is True
    assert (wh["backlog"], wh["dead"]) == (4, 1)
    assert wh["subscriptions"] == {"active": 2, "disabled": 1}
    assert wh["last_success_at"].startswith("2026-") and wh["last_error"] == "HTTP 503"
    assert wh["last_error_at"] > wh["last_success_at"]
    assert (sl["backlog"], sl["dead"]) == (0, 2)
    assert sl["configured"] is True  # the tenant's channel URL
    assert sl["enabled"] is False and sl["last_success_at"] is None
    assert (mo["backlog"], mo["dead"]) == (1, 0)
    assert mo["configured"] is False and mo["enabled"] is False and mo["payment_webhook"] is True
    assert mo["last_success_at"] is None  # the other tenant's success is not ours
    # the other tenant sees its own
    o = other.get(STATUS).json()["integrations"]
    assert (o["moco"]["backlog"], o["webhook"]["backlog"], o["slack"]["dead"]) == (1, 0, 0)
    assert o["moco"]["last_success_at"] is not None
    assert o["webhook"]["subscriptions"] == {"active": 0, "disabled": 0}
    assert o["slack"]["configured"] is False
    # read roles only
    for role in ("viewer", "sales", "manager"):
        assert t.get(STATUS, role=role).status_code == 200
    problem(t.get(STATUS, role="ingest"), 403)
    assert hooks_server.http.get(hooks_server.url + STATUS, timeout=30).status_code == 401


def test_status_reflects_the_configuration(fresh_server):
    s = fresh_server
    s.env.update({"SLACK_WEBHOOK_URL": "https://hooks.slack.example/T/B/x",
                  "ENABLE_SLACK_ALERTS": "1", "SLACK_SIGNING_SECRET": "sss",
                  "MOCO_API_KEY": KEY, "MOCO_SUBDOMAIN": "acme", "ENABLE_MOCO_SYNC": "1",
                  "LEADFLOW_DISPATCHER": "0"})
    s.start()
    got = s.get(STATUS).json()["integrations"]
    assert got["slack"]["configured"] is True and got["slack"]["enabled"] is True
    assert got["slack"]["interactions"] is True
    assert got["moco"]["configured"] is True and got["moco"]["enabled"] is True
    assert got["moco"]["payment_webhook"] is False
    # a key without a subdomain or base URL is not configured
    s.restart(MOCO_SUBDOMAIN="")
    assert s.get(STATUS).json()["integrations"]["moco"]["configured"] is False


def test_status_after_moco_work_shows_the_success(fresh_server, moco):
    s = moco_server(fresh_server, moco)
    t = Tenant(s)
    lead, deal = customer_with_deal(t)
    win(t, deal)
    wait_for("moco deliveries done", lambda: all_sent(t))
    st = wait_for("the last success", lambda: t.get(STATUS).json()["integrations"]["moco"]
                  if t.get(STATUS).json()["integrations"]["moco"]["last_success_at"] else None)
    assert st["configured"] is True and st["enabled"] is True and st["payment_webhook"] is True
    assert st["backlog"] == 0 and st["dead"] == 0 and st["last_error"] is None
    # and the payment webhook closes the loop on the stand-in's invoice
    r = t.post("/api/v1/automation/rules", {
        "name": "invoice", "trigger_type": "event", "trigger_config": {"event_type": "bill_me"},
        "action_type": "sync_moco", "action_config": {"operation": "create_invoice"}})
    assert r.status_code == 201, r.text
    # the deal is won: an event trigger needs an open deal, so bill a new one
    lead2, deal2 = customer_with_deal(t)
    t.send("bill_me", lead2["email"])
    d = wait_for("the invoice id", lambda: deal_of(t, deal2["id"])["moco_invoice_id"] and
                 deal_of(t, deal2["id"]))
    r = hook(s, {"id": int(d["moco_invoice_id"]), "status": "paid"})
    assert r.status_code == 200 and r.json() == {"status": "paid", "deal_id": deal2["id"]}, r.text
    assert deal_of(t, deal2["id"])["paid_at"] is not None
    assert len(paid_events(t, lead2["id"])) == 1
