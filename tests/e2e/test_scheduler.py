"""The scheduler and the score decay job: expiry with the clock moved by the test clock
(LEADFLOW_TEST_NOW and PUT /api/v1/test/clock, test builds only), intent windows, the jobs
API, and a slot running once when two processes share the database file."""
import sqlite3
import time

from conftest import Server, problem


def set_clock(server, now):
    """Moves the server's clock; tokens are minted again on the new clock (they expire)."""
    r = server.put("/api/v1/test/clock", {"now": now})
    assert r.status_code == 200, r.text
    server.env["LEADFLOW_TEST_NOW"] = now
    server._tokens.clear()


def only_rules(server, *rules, intents=()):
    """Replaces the default tenant's rules with the given ones."""
    for kind in ("scoring", "intent"):
        for rule in server.get(f"/api/v1/{kind}/rules").json()["items"]:
            assert server.delete(f"/api/v1/{kind}/rules/{rule['id']}").status_code == 204
    for i, rule in enumerate(rules):
        body = {"slug": f"r{i}", "name": f"rule {i}", "category": "engagement", **rule}
        assert server.post("/api/v1/scoring/rules", body).status_code == 201
    for i, rule in enumerate(intents):
        body = {"slug": f"i{i}", **rule}
        assert server.post("/api/v1/intent/rules", body).status_code == 201


def send(server, event_type, email, **extra):
    r = server.ingest({"event_type": event_type, "lead": {"email": email}, **extra})
    assert r.status_code == 202, r.text
    return server.wait_processed(r.json()["event_id"])


def run_decay(server, role="admin"):
    return server.post("/api/v1/scheduler/jobs/score_decay/run", role=role)


def test_decay_expires_rows_and_rearms_hot(fresh_server):
    s = fresh_server
    s.env["LEADFLOW_TEST_NOW"] = "2026-05-01T12:00:00Z"
    s.start()
    only_rules(s, {"event_type": "page_view", "points": 50, "expires_after_days": 30},
               {"event_type": "download", "points": 40, "category": "behavior"})
    ev = send(s, "page_view", "ada@lab.example")
    send(s, "download", "ada@lab.example")  # 90: hot, disarmed
    lead_id = ev["lead_id"]
    assert s.get(f"/api/v1/leads/{lead_id}").json()["score"]["total"] == 90
    # an event older than its rule's expiry adds a row that is expired at once: no points
    old = send(s, "page_view", "ada@lab.example", occurred_at="2026-03-01T00:00:00Z")
    assert "expired" in old["result"]["score_skipped"].values()
    assert s.get(f"/api/v1/leads/{lead_id}").json()["score"]["total"] == 90

    # nothing is due yet
    r = run_decay(s)
    assert r.status_code == 200 and r.json()["result"]["rows_expired"] == 0, r.text
    set_clock(s, "2026-06-01T12:00:00Z")  # 31 days on
    r = run_decay(s)
    assert r.status_code == 200, r.text
    res = r.json()["result"]
    assert res["ok"] is True and res["rows_expired"] == 1 and res["leads_rescored"] == 1
    assert res["scores_changed"] == 1
    lead = s.get(f"/api/v1/leads/{lead_id}").json()
    assert lead["score"]["total"] == 40 and lead["score"]["engagement"] == 0
    sc = s.get(f"/api/v1/leads/{lead_id}/score").json()
    assert len(sc["expired"]) == 2 and sc["categories"]["engagement"]["rows"] == []
    # fell from 90 to 40, more than 10 below 80: re-armed, so the next crossing alerts again
    again = send(s, "page_view", "ada@lab.example")
    assert again["result"]["score"]["hot"] is True
    s.wait_idle()
    scored = s.get("/api/v1/events", params={"event_type": "lead.scored",
                                             "lead_id": lead_id}).json()["items"]
    assert any(e["metadata"]["reason"] == "decay" for e in scored)
    # a second run finds nothing new
    assert run_decay(s).json()["result"]["rows_expired"] == 0
    # the jobs API shows the last run
    jobs = s.get("/api/v1/scheduler/jobs").json()["items"]
    job = next(j for j in jobs if j["name"] == "score_decay")
    assert job["schedule"] == "0 2 * * *" and job["enabled"] is True
    assert job["next_run_at"] == "2026-06-02T02:00:00.000Z"
    assert job["last_run"]["trigger"] == "manual" and job["last_run"]["running"] is False
    assert job["last_run"]["result"]["rows_expired"] == 0
    assert s.get("/api/v1/scheduler/jobs/score_decay").json()["name"] == "score_decay"
    problem(s.get("/api/v1/scheduler/jobs/nope"), 404)
    problem(run_decay(s, role="manager"), 403)
    problem(s.post("/api/v1/scheduler/jobs/nope/run"), 404)


def test_decay_reevaluates_intent_windows(fresh_server):
    s = fresh_server
    s.env["LEADFLOW_TEST_NOW"] = "2026-01-10T12:00:00Z"
    s.start()
    only_rules(s, intents=[{"intent": "research", "event_type": "download", "points": 30}])
    ev = send(s, "download", "bo@lab.example", occurred_at="2026-01-01T00:00:00Z")
    lead = s.get(f"/api/v1/leads/{ev['lead_id']}").json()
    assert lead["intent"]["primary"] == "research" and lead["intent"]["confidence"] == 100
    set_clock(s, "2026-07-15T12:00:00Z")  # the signal is now older than 180 days
    res = run_decay(s).json()["result"]
    assert res["intents_reevaluated"] == 1 and res["intents_changed"] == 1
    lead = s.get(f"/api/v1/leads/{ev['lead_id']}").json()
    assert lead["intent"]["primary"] is None and lead["intent"]["confidence"] == 0


def test_a_slot_runs_once_across_two_processes_and_a_missed_slot_runs_at_start(tmp_path):
    env = {"LEADFLOW_TEST_NOW": "2026-01-01T01:59:57Z", "LEADFLOW_WORKERS": "1"}
    a = Server(tmp_path, **env).start()
    b = Server(tmp_path, **env)
    b.log_path = str(tmp_path / "server-b.log")
    b.start()
    try:
        db = sqlite3.connect(a.db, timeout=10)
        deadline = time.time() + 20
        rows = []
        while time.time() < deadline:
            rows = db.execute("SELECT slot, node, finished_at FROM scheduler_runs"
                              " WHERE job = 'score_decay'").fetchall()
            if rows and all(r[2] for r in rows):
                break
            time.sleep(0.2)
        time.sleep(2)  # both processes have passed the slot by now
        rows = db.execute("SELECT slot, node, trigger_kind FROM scheduler_runs"
                          " WHERE job = 'score_decay'").fetchall()
        slot = 1767232800000  # 2026-01-01T02:00:00Z
        assert [(r[0], r[2]) for r in rows] == [(slot, "schedule")], rows
        logs = a.read_log() + b.read_log()
        finished = [line for line in logs.splitlines() if '"msg":"job finished"' in line]
        assert sum('"job":"score_decay"' in line for line in finished) == 1, finished
    finally:
        assert a.stop() == 0
        assert b.stop() == 0
    # two days later: the slots of Jan 2 and Jan 3 were missed; the newest runs once at start
    a.env["LEADFLOW_TEST_NOW"] = "2026-01-03T05:00:00Z"
    a.start()
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            slots = [r[0] for r in db.execute("SELECT slot FROM scheduler_runs WHERE"
                                              " job = 'score_decay' ORDER BY slot")]
            if len(slots) >= 2:
                break
            time.sleep(0.2)
        time.sleep(1.5)
        slots = [r[0] for r in db.execute("SELECT slot FROM scheduler_runs WHERE"
                                          " job = 'score_decay' ORDER BY slot")]
        assert slots == [slot, slot + 2 * 86400000], slots
    finally:
        db.close()
        assert a.stop() == 0


def test_a_job_that_never_ran_waits_for_its_slot(fresh_server):
    fresh_server.env["LEADFLOW_TEST_NOW"] = "2026-02-01T12:00:00Z"
    fresh_server.start()
    time.sleep(1.5)
    job = fresh_server.get("/api/v1/scheduler/jobs").json()["items"][0]
    assert job["last_run"] is None and job["next_run_at"] == "2026-02-02T02:00:00.000Z"


def test_decay_can_be_switched_off(fresh_server):
    fresh_server.env.update({"ENABLE_SCORE_DECAY": "0", "LEADFLOW_SCORE_DECAY_CRON": "* * * * *"})
    fresh_server.start()
    time.sleep(1.5)
    job = fresh_server.get("/api/v1/scheduler/jobs").json()["items"][0]
    assert job["enabled"] is False and job["next_run_at"] is None
    assert job["schedule"] == "* * * * *"


def test_a_bad_schedule_stops_the_start(fresh_server):
    fresh_server.env["LEADFLOW_SCORE_DECAY_CRON"] = "0 25 * * *"
    try:
        fresh_server.start(timeout=5)
        raise AssertionError("started with a bad schedule")
    except AssertionError as e:
        assert "hour" in str(e) and "score_decay" in str(e)
