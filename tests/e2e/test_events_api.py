"""Inspecting, listing, counting and replaying events."""
import time
import uuid

from conftest import problem


def test_get_unknown_event_is_404(server):
    problem(server.get(f"/api/v1/events/{uuid.uuid4()}"), 404)


def test_list_filters_and_cursor(server):
    tag = uuid.uuid4().hex[:8]
    ids = []
    for i in range(7):
        r = server.ingest({"event_type": f"t_{tag}", "source": "filt" if i % 2 else "other"})
        ids.append(r.json()["event_id"])
    server.wait_idle()
    got, cursor = [], None
    while True:
        q = f"/api/v1/events?event_type=t_{tag}&limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = server.get(q).json()
        got += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert got == list(reversed(ids))  # newest first, no repeats
    odd = server.get(f"/api/v1/events?event_type=t_{tag}&source=filt").json()["items"]
    assert [e["id"] for e in odd] == [ids[5], ids[3], ids[1]]
    assert server.get(f"/api/v1/events?event_type=t_{tag}&status=pending").json()["items"] == []
    assert len(server.get(f"/api/v1/events?event_type=t_{tag}&status=processed").json()["items"]) == 7


def test_list_time_window(server):
    tag = uuid.uuid4().hex[:8]
    before = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1)) + "Z"
    server.ingest({"event_type": f"w_{tag}"})
    after = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 2)) + "Z"
    assert len(server.get(f"/api/v1/events?event_type=w_{tag}&since={before}").json()["items"]) == 1
    assert server.get(f"/api/v1/events?event_type=w_{tag}&since={after}").json()["items"] == []
    assert server.get(f"/api/v1/events?event_type=w_{tag}&until={before}").json()["items"] == []


def test_list_rejects_bad_filters(server):
    problem(server.get("/api/v1/events?status=weird"), 400)
    problem(server.get("/api/v1/events?since=notatime"), 400)
    problem(server.get("/api/v1/events?limit=abc"), 400)


def test_failed_event_and_replay(server):
    r = server.ingest({"event_type": "boom", "metadata": {"test_fail": True}})
    eid = r.json()["event_id"]
    deadline = time.time() + 30
    while time.time() < deadline:  # 5 tries with 200 ms, 800 ms, 3.2 s … backoff
        ev = server.get(f"/api/v1/events/{eid}").json()
        if ev["status"] == "failed" and ev["next_attempt_at"] is None:
            break
        time.sleep(0.2)
    assert ev["status"] == "failed" and ev["attempts"] == 5 and ev["next_attempt_at"] is None
    assert "asked to fail" in ev["error_message"]
    counts = server.get("/api/v1/events/status/pending").json()
    assert counts["by_status"]["failed"] >= 1
    assert any(c["event_type"] == "boom" and c["status"] == "failed" for c in counts["by_type"])
    r = server.post(f"/api/v1/events/{eid}/replay")
    assert r.status_code == 202 and r.json()["status"] == "pending"
    time.sleep(0.3)
    ev = server.get(f"/api/v1/events/{eid}").json()
    assert ev["attempts"] >= 1 and ev["status"] in ("failed", "pending")


def test_flaky_event_succeeds_on_retry(server):
    r = server.ingest({"event_type": "flaky", "metadata": {"test_fail_times": 2}})
    ev = server.wait_processed(r.json()["event_id"], timeout=20)
    assert ev["attempts"] == 3 and ev["error_message"] is None
    assert ev["result"]["test"] == "ok" and ev["result"]["outcome"] == "no_identity"


def test_replay_by_filter(server):
    tag = uuid.uuid4().hex[:8]
    for _ in range(4):
        server.ingest({"event_type": f"r_{tag}"})
    server.wait_idle()
    first = {e["id"]: e["processed_at"]
             for e in server.get(f"/api/v1/events?event_type=r_{tag}").json()["items"]}
    time.sleep(0.01)
    r = server.post("/api/v1/events/replay", {"event_type": f"r_{tag}", "limit": 3})
    assert r.status_code == 202 and r.json()["replayed"] == 3
    server.wait_idle()
    evs = server.get(f"/api/v1/events?event_type=r_{tag}").json()["items"]
    again = sorted(first[e["id"]] != e["processed_at"] for e in evs)
    assert again == [False, True, True, True]  # the three oldest were processed again
    assert all(e["status"] == "processed" and e["attempts"] == 1 for e in evs)
    problem(server.post("/api/v1/events/replay", {}), 400)  # no filter
    problem(server.post("/api/v1/events/replay", {"status": "x"}), 400)
    problem(server.post("/api/v1/events/replay", {"status": "failed", "limit": 10001}), 400)
    problem(server.post(f"/api/v1/events/{uuid.uuid4()}/replay"), 404)


def test_pending_counts_shape(server):
    body = server.get("/api/v1/events/status/pending").json()
    assert set(body) >= {"pending", "by_status", "by_type", "ingest_queue", "failed_retrying"}
    assert set(body["by_status"]) == {"pending", "processing", "failed"}
