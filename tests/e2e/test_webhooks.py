"""Webhook subscriptions end to end: the relay writes a delivery for every stored event whose
type matches an active subscription, the dispatcher sends it to a local receiver
(webhook_receiver.Receiver) signed per Standard Webhooks, and the npm package
`standardwebhooks` (tests/e2e/js/verify.js, an independent implementation) accepts it.
Retries, Retry-After, 410, a receiver down for a while, the last try, secret rotation, a
kill -9 with deliveries in flight, manual retry and recover.

Waits longer than a second are never slept: the test moves the server's clock (PUT
/api/v1/test/clock) to the delivery's next_attempt_at and waits for the try."""
import datetime as dt
import json
import sqlite3
import time
import uuid

import pytest

from conftest import Server, Tenant, problem, stdwebhook_sign
from webhook_receiver import Receiver, Request, answer, verify

# The delay before try n+1 after n failed tries (n = 1..7), ±20% jitter (DESIGN §8).
SCHEDULE_S = [5, 300, 1800, 7200, 18000, 36000, 36000]
MAX_ATTEMPTS = 8
ENV = {"LEADFLOW_ALLOW_PRIVATE_TARGETS": "1",  # the receivers are on 127.0.0.1 (as conftest's)
       "ENABLE_SCORE_DECAY": "0"}  # the clock jumps by hours: no decay events in between


# --------------------------------------------------------------------------------------------
# the server's clock

def ms(text):
    """An RFC 3339 date-time of the API as epoch milliseconds."""
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def iso(ms_):
    return dt.datetime.fromtimestamp(ms_ / 1000, dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Clock:
    """The server's clock as the tests move it. Remembers every move, so a request's arrival
    (wall time) converts to the server's time then: the moment the npm package checks the
    webhook-timestamp against (it refuses one more than 5 minutes away)."""

    def __init__(self, server):
        self.s = server
        self.moves = [(0.0, 0.0)]  # (wall time of the move, server time - wall time), seconds

    def now_ms(self):
        return int((time.time() + self.moves[-1][1]) * 1000)

    def at(self, wall):
        """The server's time (seconds) at wall time `wall`."""
        offset = [o for w, o in self.moves if w <= wall][-1]
        return wall + offset

    def set(self, to_ms):
        """Moves the server's clock to to_ms (forward only: tokens and schedules assume it);
        tokens are minted again on the new clock (the old ones expire)."""
        to_ms = max(int(to_ms), self.now_ms())
        r = self.s.put("/api/v1/test/clock", {"now": iso(to_ms)})
        assert r.status_code == 200, r.text
        self.moves.append((time.time(), to_ms / 1000 - time.time()))
        self.s.env["LEADFLOW_TEST_NOW"] = iso(to_ms)
        self.s._tokens.clear()

    def advance(self, seconds):
        self.set(self.now_ms() + seconds * 1000)


def checked(server, secret, req):
    """Asserts the npm standardwebhooks package accepts req with secret (as of the server's
    time when it arrived) and returns the payload it parsed."""
    ok, got = verify(secret, req, now=server.clock.at(req.time))
    assert ok, f"standardwebhooks refused {req!r} with {secret[:12]}…: {got}"
    return got


# --------------------------------------------------------------------------------------------
# fixtures

def start_server(path):
    s = Server(path, **ENV).start()
    s.clock = Clock(s)
    return s


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """This module's own server: its clock jumps by days (conftest's shared one is not moved
    that far) and runs no score decay."""
    s = start_server(tmp_path_factory.mktemp("hooks"))
    yield s
    rc = s.stop()
    assert rc == 0, "leadflow did not exit cleanly:\n" + s.read_log()[-4000:]


@pytest.fixture
def t(server):
    """A tenant of the test's own (with the default rules), so each test's subscriptions see
    only its own events."""
    return Tenant(server, keep_rules=True)


@pytest.fixture
def receivers():
    """receivers(**kw) → a started Receiver; all are stopped when the test ends."""
    made = []

    def make(**kw):
        r = Receiver(**kw).start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def test_a_slow_host_queues_tries_outside_curl(tmp_path, receivers):
    """With one slot per host, deliveries to a receiver taking 1 s wait for the slot without
    their try's clock running: each try lasts about the receiver's second, none times out."""
    rx = receivers(delay=1.0)
    ENV_ONE = dict(ENV, LEADFLOW_DISPATCH_PER_HOST="1")
    s = Server(tmp_path, **ENV_ONE).start()
    try:
        t = Tenant(s, keep_rules=True)
        sub = subscribe(t, rx.url, ["slow"])
        events = [{"event_type": "slow", "lead": {"email": f"slow{i}@hooks.example"}}
                  for i in range(3)]
        r = s.post("/api/v1/events/batch", {"events": events}, role="ingest", tenant=t.slug)
        assert r.status_code == 202, r.text
        t.wait_idle()
        rows = deliveries(t, sub)
        assert len(rows) == 3
        for d in rows:
            d = wait_status(t, d["id"], "succeeded", timeout=20)
            [attempt] = d["attempt_log"]
            assert 900 <= attempt["duration_ms"] < 1900, attempt  # its own second, not the queue's
        # one at a time: the three answers came a second apart
        times = sorted(q.time for q in rx.requests)
        assert times[2] - times[0] >= 1.8, times
    finally:
        s.stop()


# --------------------------------------------------------------------------------------------
# helpers

def uniq(p="x"):
    return f"{p}-{uuid.uuid4().hex[:8]}"


def subscribe(t, url, event_types, description=None):
    body = {"url": url, "event_types": event_types}
    if description is not None:
        body["description"] = description
    r = t.post("/api/v1/subscriptions", body)
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["secret"].startswith("whsec_"), sub
    assert sub["is_active"] is True, sub
    return sub


def get_sub(t, sub):
    r = t.get(f"/api/v1/subscriptions/{sub['id']}")
    assert r.status_code == 200, r.text
    return r.json()


def ingest(t, event_type, email=None, **extra):
    """Sends an event about a lead (a new one unless email is given; none when email is False)
    and waits until it is processed."""
    ev = {"event_type": event_type, **extra}
    if email is not False:
        ev["lead"] = {"email": email or uniq("lead") + "@hooks.example"}
    r = t.s.ingest(ev, tenant=t.slug)
    assert r.status_code == 202, r.text
    eid = r.json()["event_id"]
    deadline = time.time() + 15
    while True:
        got = t.get(f"/api/v1/events/{eid}")
        if got.status_code == 200 and got.json()["status"] == "processed":
            return got.json()
        assert time.time() < deadline, got.text
        time.sleep(0.02)


def deliveries(t, sub=None, **query):
    params = {"limit": 500, **query}
    if sub:
        params["subscription"] = sub["id"]
    r = t.get("/api/v1/deliveries", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def delivery(t, did):
    r = t.get(f"/api/v1/deliveries/{did}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_delivery(t, did, pred, what, timeout=10):
    """Waits until pred(delivery) holds; fails showing the delivery and its attempt log."""
    deadline = time.time() + timeout
    while True:
        d = delivery(t, did)
        if pred(d):
            return d
        if time.time() > deadline:
            raise AssertionError(f"delivery {did} never {what}: {d}")
        time.sleep(0.03)


def wait_attempts(t, did, n, timeout=10):
    """Waits until try n has ended (recorded, no longer in flight)."""
    return wait_delivery(t, did, lambda d: d["attempts"] >= n and d["status"] != "in_flight",
                         f"ended try {n}", timeout)


def wait_status(t, did, status, timeout=10):
    return wait_delivery(t, did, lambda d: d["status"] == status, status, timeout)


def only_delivery(t, sub, timeout=10):
    """The single delivery of the subscription (waits for it to be written)."""
    deadline = time.time() + timeout
    while True:
        items = deliveries(t, sub)
        if items:
            assert len(items) == 1, items
            return items[0]
        assert time.time() < deadline, f"no delivery for subscription {sub['id']}"
        time.sleep(0.03)


def codes(d):
    return [a["status_code"] for a in d["attempt_log"]]


def due_gap_s(d):
    """Seconds between the last try's start and the next try's due time."""
    return (ms(d["next_attempt_at"]) - ms(d["attempt_log"][-1]["started_at"])) / 1000


def move_to_due(server, d):
    """Moves the clock just past the delivery's next try."""
    assert d["next_attempt_at"], d
    server.clock.set(ms(d["next_attempt_at"]) + 1000)


def scoring_rule(t, event_type):
    t.rule(event_type=event_type, points=7)


# --------------------------------------------------------------------------------------------
# the tools: the npm verifier and the receiver

VECTORS = [  # (secret, id, timestamp, body, signature): the Standard Webhooks test vectors
    ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
     b'{"test": 2432232314}', "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
    ("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553,
     b'{"email":"test@example.com","username":"test_user"}',
     "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="),
]


def test_verifier_checks_the_standard_vectors():
    """The npm package is installed and wired up: it accepts the vectors (and conftest's
    reference signer agrees) and refuses a changed body, id, secret or a stale timestamp."""
    for i, (secret, mid, ts, body, sig) in enumerate(VECTORS):
        assert stdwebhook_sign(secret, mid, ts, body) == sig
        h = {"webhook-id": mid, "webhook-timestamp": str(ts), "webhook-signature": sig}
        req = Request("POST", "/", h, body, ts)  # arrived at ts
        assert verify(secret, req) == (True, json.loads(body))
        other_secret = VECTORS[1 - i][0]
        assert verify(other_secret, req)[0] is False
        assert verify(secret, Request("POST", "/", h, body + b" ", ts))[0] is False
        other_id = {**h, "webhook-id": "msg_x"}
        assert verify(secret, Request("POST", "/", other_id, body, ts))[0] is False
        assert verify(secret, req, now=ts + 301) == (False, "Message timestamp too old")
        two = {**h, "webhook-signature": "v1,bm90IGl0 " + sig}  # any one of several may match
        assert verify(secret, Request("POST", "/", two, body, ts))[0] is True


def test_receiver_scripts_answers_and_comes_back_on_its_port():
    import requests
    with Receiver() as rx:
        rx.script(500, answer(429, retry_after=7), answer(drop=True))
        sess = requests.Session()
        assert sess.post(rx.url, data=b"a").status_code == 500
        r = sess.post(rx.url, data=b"b")
        assert r.status_code == 429 and r.headers["Retry-After"] == "7"
        with pytest.raises(requests.ConnectionError):
            sess.post(rx.url, data=b"c")
        assert sess.post(rx.url, data=b"d").status_code == 200  # the default
        port = rx.port
        rx.stop()
        with pytest.raises(requests.ConnectionError):  # down: refused, also on a kept-alive one
            sess.post(rx.url, data=b"e", timeout=2)
        rx.start()
        assert rx.port == port and sess.post(rx.url, data=b"f").status_code == 200
        assert [q.body for q in rx.requests] == [b"a", b"b", b"c", b"d", b"f"]
        assert [q.status for q in rx.requests] == [500, 429, None, 200, 200]


# --------------------------------------------------------------------------------------------
# delivery and signature

def test_external_event_is_delivered_signed(server, t, receivers):
    rx = receivers()
    sub = subscribe(t, rx.url, ["job.created"], description="jobs board")
    ev = ingest(t, "job.created", metadata={"title": "Welder"})
    req = rx.wait(1)[0]
    assert req.method == "POST" and req.path == "/hook"
    assert req.headers["content-type"].startswith("application/json")
    payload = checked(server, sub["secret"], req)
    assert set(payload) == {"id", "type", "timestamp", "data"}, payload
    assert payload["type"] == "job.created"
    assert req.id == payload["id"]
    assert payload["data"]["event"]["id"] == ev["id"]
    assert payload["data"]["event"]["type"] == "job.created"
    assert payload["data"]["event"]["metadata"] == {"title": "Welder"}
    # the signature is exactly HMAC-SHA256 over "id.timestamp.body" (conftest's reference too)
    assert req.signatures == [stdwebhook_sign(sub["secret"], req.id, req.timestamp, req.body)]
    assert abs(req.timestamp - server.clock.at(req.time)) < 5  # this try's time
    # the delivery row: succeeded after one try that logged the 200
    d = wait_status(t, only_delivery(t, sub)["id"], "succeeded")
    assert d["kind"] == "webhook" and d["subscription_id"] == sub["id"]
    assert d["event_id"] == ev["id"] and d["attempts"] == 1 and d["last_status"] == 200
    assert d["delivered_at"] and d["next_attempt_at"] is None
    assert codes(d) == [200] and d["attempt_log"][0]["duration_ms"] is not None
    # the event lists its delivery
    shown = t.get(f"/api/v1/events/{ev['id']}").json()
    assert [x["id"] for x in shown["deliveries"]] == [d["id"]], shown


def test_event_without_a_lead_is_relayed(server, t, receivers):
    """"Every stored event" matching a subscription is relayed, also one that names no lead
    (it is stored and processed, outcome no_identity)."""
    rx = receivers()
    sub = subscribe(t, rx.url, ["job.*"])
    ev = ingest(t, "job.closed", email=False, metadata={"n": 1})
    assert ev["lead_id"] is None
    q = rx.wait(1)[0]
    payload = checked(server, sub["secret"], q)
    assert payload["data"]["event"]["id"] == ev["id"] and "lead" not in payload["data"]


def test_domain_event_is_delivered_with_its_lead(server, t, receivers):
    rx = receivers()
    scoring_rule(t, "hooks_visit")
    sub = subscribe(t, rx.url, ["lead.scored"])
    email = uniq("scored") + "@corp.example"
    ext = ingest(t, "hooks_visit", email)
    req = rx.wait(1)[0]
    payload = checked(server, sub["secret"], req)
    assert payload["type"] == "lead.scored" and req.id == payload["id"]
    assert payload["data"]["event"]["type"] == "lead.scored"
    assert payload["data"]["event"]["lead_id"] == ext["lead_id"]
    assert payload["data"]["lead"]["id"] == ext["lead_id"]
    assert payload["data"]["lead"]["email"] == email
    assert rx.quiet(0.3) == []  # the external event itself does not match
    wait_status(t, only_delivery(t, sub)["id"], "succeeded")


def test_patterns(server, t, receivers):
    scoring_rule(t, "job.created")
    rx = {name: receivers() for name in ("lead", "deal", "all", "job", "mixed", "none", "off")}
    subs = {
        "lead": subscribe(t, rx["lead"].url, ["lead.*"]),
        "deal": subscribe(t, rx["deal"].url, ["deal.created"]),
        "all": subscribe(t, rx["all"].url, ["*"]),
        "job": subscribe(t, rx["job"].url, ["job.created"]),
        "mixed": subscribe(t, rx["mixed"].url, ["deal.*", "job.created"]),
        "none": subscribe(t, rx["none"].url, ["deal.won", "job.deleted", "lead"]),
        "off": subscribe(t, rx["off"].url, ["*"]),
    }
    r = t.patch(f"/api/v1/subscriptions/{subs['off']['id']}", {"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False, r.text

    email = uniq("pat") + "@corp.example"
    ev = ingest(t, "job.created", email)
    r = t.post("/api/v1/deals", {"lead_id": ev["lead_id"], "pipeline": "b2b"})
    assert r.status_code == 201, r.text
    deal = r.json()
    t.wait_idle()
    rx["all"].wait(match=lambda q: q.json()["type"] == "deal.created")
    # every delivery written for the tenant has been sent once it succeeded
    deadline = time.time() + 10
    while any(d["status"] != "succeeded" for d in deliveries(t, kind="webhook")):
        assert time.time() < deadline, deliveries(t, kind="webhook")
        time.sleep(0.05)

    got = {}
    for name, r_ in rx.items():
        got[name] = sorted({q.json()["type"] for q in r_.requests})
        for q in r_.requests:
            checked(server, subs[name]["secret"], q)
    every = got["all"]
    assert {"job.created", "lead.scored", "deal.created"} <= set(every), got
    assert got["lead"] == sorted(x for x in every if x.startswith("lead.")), got
    assert "lead.scored" in got["lead"]
    assert got["deal"] == ["deal.created"], got
    data = rx["deal"].requests[0].json()["data"]  # a deal event carries its deal and lead
    assert data["deal"]["id"] == deal["id"] and data["lead"]["id"] == ev["lead_id"], data
    assert got["job"] == ["job.created"], got
    assert got["mixed"] == sorted(x for x in every if x.startswith("deal.") or x == "job.created")
    assert got["none"] == [] and got["off"] == [], got
    assert deliveries(t, subs["none"]) == [] and deliveries(t, subs["off"]) == []
    # one delivery per (subscription, event), and the rows match what arrived
    for name in ("lead", "deal", "all", "job", "mixed"):
        rows = deliveries(t, subs[name])
        assert len(rows) == len(rx[name].requests) == len({d["event_id"] for d in rows}), name


# --------------------------------------------------------------------------------------------
# failures and retries

def test_retries_after_500s_then_success(server, t, receivers):
    rx = receivers()
    rx.script(500, 500, 500)  # then the default 200
    sub = subscribe(t, rx.url, ["order.placed"])
    ingest(t, "order.placed")
    did = only_delivery(t, sub)["id"]
    for n in (1, 2, 3):
        d = wait_attempts(t, did, n)
        assert d["status"] == "failed" and d["last_status"] == 500, d
        gap = due_gap_s(d)
        assert 0.8 * SCHEDULE_S[n - 1] - 1 <= gap <= 1.2 * SCHEDULE_S[n - 1] + 1, (n, gap, d)
        assert rx.quiet(0.1) == [] and len(rx.requests) == n  # not sent before it is due
        move_to_due(server, d)
        rx.wait(n + 1)
    d = wait_status(t, did, "succeeded")
    assert codes(d) == [500, 500, 500, 200], d["attempt_log"]
    assert [a["attempt"] for a in d["attempt_log"]] == [1, 2, 3, 4]
    assert d["attempts"] == 4 and d["last_status"] == 200 and d["next_attempt_at"] is None
    assert all(a["error"] for a in d["attempt_log"][:3]), d["attempt_log"]
    reqs = rx.requests
    assert len(reqs) == 4 and len({q.id for q in reqs}) == 1  # webhook-id stable across tries
    assert len({q.body for q in reqs}) == 1
    stamps = [q.timestamp for q in reqs]
    assert stamps == sorted(stamps), stamps
    assert stamps[-1] - stamps[0] >= 0.8 * sum(SCHEDULE_S[:3]), stamps
    for q in reqs:  # each try signed with its own timestamp
        checked(server, sub["secret"], q)


def test_retry_after_is_honoured(server, t, receivers):
    rx = receivers()
    rx.script(answer(429, retry_after=120), answer(503, retry_after=900))
    sub = subscribe(t, rx.url, ["order.placed"])
    ingest(t, "order.placed")
    did = only_delivery(t, sub)["id"]
    d = wait_attempts(t, did, 1)
    assert d["status"] == "failed" and d["last_status"] == 429
    assert 119 <= due_gap_s(d) <= 121, d  # not the schedule's 5 s
    assert rx.quiet(0.2) == []
    move_to_due(server, d)
    d = wait_attempts(t, did, 2)
    assert d["last_status"] == 503
    assert 899 <= due_gap_s(d) <= 901, d  # not the schedule's 5 min
    move_to_due(server, d)
    d = wait_status(t, did, "succeeded")
    assert codes(d) == [429, 503, 200]
    assert len({q.id for q in rx.requests}) == 1


def test_410_disables_the_subscription(server, t, receivers):
    rx = receivers()
    watcher = receivers()
    rx.script(410)
    sub = subscribe(t, rx.url, ["order.*"])
    watch = subscribe(t, watcher.url, ["subscription.disabled"])
    ingest(t, "order.placed")
    did = only_delivery(t, sub)["id"]
    d = wait_delivery(t, did, lambda d: d["status"] not in ("pending", "in_flight"), "ended")
    assert d["status"] == "dead" and d["next_attempt_at"] is None, d
    assert codes(d) == [410]
    s = get_sub(t, sub)
    assert s["is_active"] is False and s["disabled_reason"], s
    # subscription.disabled is a stored event, and goes to those who subscribe to it
    evs = t.get("/api/v1/events", params={"event_type": "subscription.disabled"}).json()["items"]
    assert len(evs) == 1, evs
    assert sub["id"] in str(evs[0]), evs[0]
    note = checked(server, watch["secret"], watcher.wait(1)[0])
    assert note["type"] == "subscription.disabled" and sub["id"] in str(note["data"]), note
    # later events write no delivery for it, and nothing arrives
    ingest(t, "order.placed")
    ingest(t, "order.shipped")
    t.wait_idle()
    assert [x["id"] for x in deliveries(t, sub)] == [did]
    assert rx.quiet(0.3) == [] and len(rx.requests) == 1
    # enabled again, it gets new events
    r = t.post(f"/api/v1/subscriptions/{sub['id']}/enable")
    assert r.status_code == 200, r.text
    s = get_sub(t, sub)
    assert s["is_active"] is True and s["disabled_reason"] is None, s
    rx.script(default=200)
    ev = ingest(t, "order.cancelled")
    q = rx.wait(2)[-1]
    assert checked(server, sub["secret"], q)["data"]["event"]["id"] == ev["id"]


def test_receiver_down_for_a_while_then_back(server, t, receivers):
    rx = receivers()
    sub = subscribe(t, rx.url, ["ping.*"])
    rx.stop()  # connections refused from now on
    sent = [ingest(t, "ping.sent", metadata={"n": n})["id"] for n in range(3)]
    t.wait_idle()
    rows = deliveries(t, sub)
    assert sorted(x["event_id"] for x in rows) == sorted(sent)
    dids = [x["id"] for x in rows]
    for tries in (1, 2):
        ds = [wait_attempts(t, did, tries) for did in dids]
        for d in ds:
            assert d["status"] == "failed" and d["last_status"] is None and d["last_error"], d
            assert d["attempt_log"][-1]["status_code"] is None and d["attempt_log"][-1]["error"]
        if tries == 1:
            server.clock.set(max(ms(d["next_attempt_at"]) for d in ds) + 1000)
    # back up on the same port; the next tries (due in ~5 min) get through
    rx.start()
    assert rx.quiet(0.3) == []  # not before they are due
    server.clock.set(max(ms(d["next_attempt_at"]) for d in ds) + 1000)
    seen = rx.wait_ids(sent)  # webhook-id is the event's id
    for did in dids:
        d = wait_status(t, did, "succeeded")
        assert codes(d) == [None, None, 200], d["attempt_log"]
    for eid in sent:
        assert len(seen[eid]) == 1
        checked(server, sub["secret"], seen[eid][0])


def test_dead_after_the_last_try_then_recover(server, t, receivers):
    rx = receivers(default=500)
    sub = subscribe(t, rx.url, ["order.placed"])
    ingest(t, "order.placed")
    did = only_delivery(t, sub)["id"]
    for n in range(1, MAX_ATTEMPTS):
        d = wait_attempts(t, did, n)
        assert d["status"] == "failed", d
        gap = due_gap_s(d)
        assert 0.8 * SCHEDULE_S[n - 1] - 1 <= gap <= 1.2 * SCHEDULE_S[n - 1] + 1, (n, gap)
        move_to_due(server, d)
    d = wait_attempts(t, did, MAX_ATTEMPTS)
    assert d["status"] == "dead" and d["next_attempt_at"] is None, d
    assert codes(d) == [500] * MAX_ATTEMPTS
    server.clock.advance(11 * 3600)
    assert rx.quiet(0.5) == [] and len(rx.requests) == MAX_ATTEMPTS  # no ninth try
    assert len({q.id for q in rx.requests}) == 1
    assert get_sub(t, sub)["is_active"] is True  # failing for ~1 day, not 5
    # recover re-sends what died in the window, with the same webhook-id
    rx.script(default=200)
    now = server.clock.now_ms()
    r = t.post(f"/api/v1/subscriptions/{sub['id']}/recover",
               {"since": iso(now - 3 * 86400 * 1000), "until": iso(now)})
    assert r.status_code in (200, 202), r.text
    q = rx.wait(MAX_ATTEMPTS + 1)[-1]
    assert q.id == rx.requests[0].id
    checked(server, sub["secret"], q)
    d = wait_status(t, did, "succeeded")
    assert codes(d) == [500] * MAX_ATTEMPTS + [200]


def test_failing_for_five_days_disables(server, t, receivers):
    rx = receivers(default=500)
    sub = subscribe(t, rx.url, ["order.*"])
    ingest(t, "order.placed")
    did = only_delivery(t, sub)["id"]
    wait_attempts(t, did, 1)
    assert get_sub(t, sub)["failing_since"], get_sub(t, sub)
    server.clock.advance(5 * 86400 - 600)  # not yet five days: the next failure keeps it
    ingest(t, "order.shipped")
    rx.wait(3)  # the first one's second try and the second one's first
    t.wait_idle()
    time.sleep(0.2)
    assert get_sub(t, sub)["is_active"] is True
    server.clock.advance(1200)  # five days and ten minutes after the first failure
    ingest(t, "order.cancelled")
    deadline = time.time() + 10
    while get_sub(t, sub)["is_active"]:
        assert time.time() < deadline, (get_sub(t, sub), deliveries(t, sub))
        time.sleep(0.05)
    assert get_sub(t, sub)["disabled_reason"], get_sub(t, sub)
    evs = t.get("/api/v1/events", params={"event_type": "subscription.disabled"}).json()["items"]
    assert len(evs) == 1, evs


def test_manual_retry_resends_with_the_same_id(server, t, receivers):
    rx = receivers()
    rx.script(500)
    sub = subscribe(t, rx.url, ["order.placed"])
    ingest(t, "order.placed")
    did = only_delivery(t, sub)["id"]
    d = wait_attempts(t, did, 1)
    assert d["status"] == "failed" and d["next_attempt_at"]
    # due in ~5 s; a manual retry sends it now
    r = t.post(f"/api/v1/deliveries/{did}/retry")
    assert r.status_code == 202, r.text
    d = wait_status(t, did, "succeeded", timeout=3)
    assert codes(d) == [500, 200]
    # a succeeded delivery may be asked for again
    assert t.post(f"/api/v1/deliveries/{did}/retry").status_code == 202
    wait_delivery(t, did, lambda d: d["attempts"] == 3 and d["status"] == "succeeded", "resent")
    reqs = rx.wait(3)
    assert len({q.id for q in reqs}) == 1
    for q in reqs:
        checked(server, sub["secret"], q)
    problem(t.post(f"/api/v1/deliveries/{uuid.uuid4()}/retry"), 404)


def test_recover_after_410_and_enable(server, t, receivers):
    rx = receivers()
    rx.script(410)
    sub = subscribe(t, rx.url, ["order.placed"])
    before = server.clock.now_ms() - 1000
    ingest(t, "order.placed")
    did = only_delivery(t, sub)["id"]
    wait_delivery(t, did, lambda d: d["status"] in ("dead", "failed"), "given up")
    assert get_sub(t, sub)["is_active"] is False
    assert t.post(f"/api/v1/subscriptions/{sub['id']}/enable").status_code == 200
    r = t.post(f"/api/v1/subscriptions/{sub['id']}/recover",
               {"since": iso(before), "until": iso(server.clock.now_ms() + 1000)})
    assert r.status_code in (200, 202), r.text
    reqs = rx.wait(2)
    assert reqs[0].id == reqs[1].id
    checked(server, sub["secret"], reqs[1])
    d = wait_status(t, did, "succeeded")
    assert codes(d) == [410, 200]


# --------------------------------------------------------------------------------------------
# secret rotation

def sig_matches(secret, req):
    """Which of req's signatures were made with secret (by conftest's reference signer)."""
    want = stdwebhook_sign(secret, req.id, req.timestamp, req.body)
    return [s == want for s in req.signatures]


def test_rotation_signs_with_both_secrets_for_24h(server, t, receivers):
    rx = receivers()
    sub = subscribe(t, rx.url, ["order.placed"])
    old = sub["secret"]
    r = t.post(f"/api/v1/subscriptions/{sub['id']}/rotate-secret")
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new.startswith("whsec_") and new != old
    ingest(t, "order.placed")
    q = rx.wait(1)[0]
    assert len(q.signatures) == 2, q.headers
    assert sig_matches(old, q).count(True) == 1 and sig_matches(new, q).count(True) == 1
    assert sig_matches(old, q) != sig_matches(new, q)
    checked(server, old, q)
    checked(server, new, q)
    for i, sig in enumerate(q.signatures):  # each alone verifies with its own secret only
        one = Request(q.method, q.path, {**q.headers, "webhook-signature": sig}, q.body, q.time)
        mine, other = (old, new) if sig_matches(old, q)[i] else (new, old)
        assert verify(mine, one, now=server.clock.at(q.time))[0]
        assert not verify(other, one, now=server.clock.at(q.time))[0]
    # past the 24-hour window only the new secret signs
    server.clock.advance(24 * 3600 + 60)
    ingest(t, "order.placed")
    q = rx.wait(2)[-1]
    assert len(q.signatures) == 1 and sig_matches(new, q) == [True], q.headers
    checked(server, new, q)
    assert verify(old, q, now=server.clock.at(q.time))[0] is False


# --------------------------------------------------------------------------------------------
# crash safety

def test_kill9_with_deliveries_in_flight_loses_none(tmp_path, receivers):
    rx = receivers(delay=1.0)  # every answer takes a second: the kill finds tries in hand
    s = start_server(tmp_path)
    try:
        t = Tenant(s, keep_rules=True)
        sub = subscribe(t, rx.url, ["tick"])
        events = [{"event_type": "tick", "lead": {"email": f"tick{i}@hooks.example"}}
                  for i in range(50)]
        r = s.post("/api/v1/events/batch", {"events": events}, role="ingest", tenant=t.slug)
        assert r.status_code == 202, r.text
        sent = {x["event_id"] for x in r.json()["results"]}
        assert len(sent) == 50
        rx.wait(5, timeout=15)
        s.kill9()
        killed = time.time()
        # arrived less than the answer's delay before the kill: cut off unanswered
        cut = {q.id for q in rx.requests if q.time > killed - 0.9}
        assert cut, rx.requests
        with sqlite3.connect(s.db) as db:
            left = db.execute("SELECT count(*) FROM deliveries WHERE status = 'in_flight'"
                              " AND subscription_id = ?", (sub["id"],)).fetchone()[0]
        db.close()
        assert left > 0  # the crash left claimed rows behind
        rx.script(default=answer(200))  # answers at once from now on
        restarted = time.time()
        s.start()
        s.clock = Clock(s)
        t.wait_idle()
        rows = deliveries(t, sub)
        assert {d["event_id"] for d in rows} == sent and len(rows) == 50
        seen = rx.wait_ids(sent, timeout=20)  # each at least once (webhook-id: the event id)
        for d in rows:
            d = wait_status(t, d["id"], "succeeded", timeout=20)
            assert d["attempt_log"][-1]["status_code"] == 200, d
        # the tries cut off by the kill were made again after the restart
        again = {q.id for q in rx.requests if q.time >= restarted}
        assert cut <= again, f"{len(cut - again)} cut-off deliveries never sent again"
        for qs in seen.values():
            checked(s, sub["secret"], qs[-1])
    finally:
        s.stop()
