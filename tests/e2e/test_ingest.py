"""Ingestion: the event shape, validation, idempotency and batches."""
import concurrent.futures as cf
import json
import uuid

import requests

from conftest import fields_of, problem, sign

EVENT = {
    "event_type": "download", "source": "portal", "occurred_at": "2026-11-20T10:00:00Z",
    "lead": {"email": "ada@lab.example", "portal_id": "p-123", "first_name": "Ada",
             "company": "Lab GmbH", "job_title": "Head of R&D", "country": "DE"},
    "metadata": {"asset_type": "whitepaper", "asset": "ngs-guide"},
    "utm": {"source": "linkedin", "medium": "social", "campaign": "q4-launch"},
}


def test_accepts_and_stores_the_design_example(server, source):
    r = server.send_signed(source, EVENT, key="design-1")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "accepted" and body["idempotency_key"] == "design-1"
    assert body["received_at"].endswith("Z") and body["processing_time_ms"] >= 0
    ev = server.get(f"/api/v1/events/{body['event_id']}").json()
    assert ev["event_type"] == "download" and ev["source"] == "portal"
    assert ev["occurred_at"] == "2026-11-20T10:00:00.000Z"
    assert ev["lead"] == EVENT["lead"] and ev["metadata"] == EVENT["metadata"]
    assert ev["utm"] == EVENT["utm"] and ev["origin"] == "external"
    assert ev["deliveries"] == []


def test_aliases_event_type_and_payload(server):
    r = server.ingest({"eventType": "job.created", "payload": {"job_id": 7}})
    assert r.status_code == 202, r.text
    ev = server.get(f"/api/v1/events/{r.json()['event_id']}").json()
    assert ev["event_type"] == "job.created" and ev["metadata"] == {"job_id": 7}


def test_event_without_identity_is_stored(server):
    r = server.ingest({"event_type": "page_view"})
    assert r.status_code == 202
    ev = server.wait_processed(r.json()["event_id"])
    assert ev["lead"] is None and ev["lead_id"] is None


def test_server_makes_a_key_when_none_given(server):
    a = server.ingest({"event_type": "page_view"}).json()
    b = server.ingest({"event_type": "page_view"}).json()
    assert a["idempotency_key"] and a["idempotency_key"] != b["idempotency_key"]


def test_validation_names_every_bad_field(server):
    bad = {"event_type": "has spaces!", "occurred_at": "yesterday", "lead": "ada",
           "metadata": [1], "utm": {"campaign": 5}, "source": 12}
    doc = problem(server.ingest(bad), 400)
    assert {"event_type", "occurred_at", "lead", "metadata", "utm.campaign", "source"} <= fields_of(doc)
    doc = problem(server.ingest({"metadata": {}}), 400)
    assert fields_of(doc) == {"event_type"}
    doc = problem(server.ingest({"event_type": "x", "lead": {"email": "a" * 600}}), 400)
    assert "lead.email" in fields_of(doc)
    doc = problem(server.ingest({"event_type": "x" * 101}), 400)
    assert "event_type" in fields_of(doc)
    doc = problem(server.ingest({"event_type": "x", "occurred_at": "2099-01-01T00:00:00Z"}), 400)
    assert "occurred_at" in fields_of(doc)


def test_malformed_json_and_wrong_shapes(server):
    h = {**server.auth("ingest"), "Content-Type": "application/json"}
    url = server.url + "/api/v1/events"
    for body in (b"{", b"", b"[1,2]", b'"text"', b'{"event_type": "a", "event_type": "b"}'):
        problem(requests.post(url, data=body, headers=h), 400)


def test_wrong_content_type_is_415(server):
    r = requests.post(server.url + "/api/v1/events", data=b'{"event_type":"x"}',
                      headers={**server.auth("ingest"), "Content-Type": "text/plain"})
    problem(r, 415)
    r = requests.post(server.url + "/api/v1/events", data=b'{"event_type":"x"}',
                      headers={**server.auth("ingest"), "Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 202


def test_oversize_body_is_413(server, source):
    big = {"event_type": "x", "metadata": {"blob": "a" * (1024 * 1024)}}
    problem(server.ingest(big), 413)
    # chunked upload without a length is cut off too
    def gen():
        for _ in range(300):
            yield b"a" * 4096
    r = requests.post(server.url + "/api/v1/events", data=gen(),
                      headers={**server.auth("ingest"), "Content-Type": "application/json"})
    problem(r, 413)
    # a metadata object over its own cap (64 KiB) but under the body cap
    doc = problem(server.ingest({"event_type": "x", "metadata": {"blob": "a" * 70000}}), 400)
    assert "metadata" in fields_of(doc)


def test_repeat_key_is_409_with_original_id(server, source):
    key = "dup-" + uuid.uuid4().hex
    first = server.send_signed(source, {"event_type": "download"}, key=key)
    assert first.status_code == 202
    again = server.send_signed(source, {"event_type": "download"}, key=key)
    doc = problem(again, 409)
    assert doc["event_id"] == first.json()["event_id"] and doc["idempotency_key"] == key
    listed = server.get("/api/v1/events?limit=500").json()["items"]
    assert sum(1 for e in listed if e["idempotency_key"] == key) == 1


def test_twenty_concurrent_copies_store_one(server, source):
    key = "race-" + uuid.uuid4().hex
    body = json.dumps({"event_type": "download", "lead": {"email": "race@x.example"}}).encode()
    headers = {"Content-Type": "application/json", "X-Source": "portal",
               "X-Webhook-Signature": sign(body, source["secret"]), "x-idempotency-key": key}

    def send(_):
        with requests.Session() as s:  # a connection of its own
            return s.post(server.url + "/api/v1/events", data=body, headers=headers)

    with cf.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(send, range(20)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(202) == 1 and codes.count(409) == 19, codes
    winner = next(r for r in results if r.status_code == 202).json()["event_id"]
    assert all(r.json()["event_id"] == winner for r in results if r.status_code == 409)


def test_keys_are_per_tenant(server, source):
    server.cli("tenant", "add", "keyco", check=False)
    key = "shared-" + uuid.uuid4().hex
    assert server.ingest({"event_type": "x"}, key=key).status_code == 202
    assert server.ingest({"event_type": "x"}, key=key, tenant="keyco").status_code == 202


def test_batch_accepts_and_reports_each(server):
    events = [{"event_type": "page_view", "lead": {"email": f"b{i}@x.example"},
               "idempotency_key": f"batch-{uuid.uuid4().hex}"} for i in range(50)]
    events.append(dict(events[0]))  # the same key twice in one batch
    r = server.post("/api/v1/events/batch", {"events": events}, role="ingest")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 50 and body["duplicates"] == 1
    res = body["results"]
    assert [x["index"] for x in res] == list(range(51))
    assert res[50]["status"] == "duplicate" and res[50]["event_id"] == res[0]["event_id"]
    # a retry of the whole batch stores nothing new
    again = server.post("/api/v1/events/batch", {"events": events}, role="ingest").json()
    assert again["accepted"] == 0 and again["duplicates"] == 51
    assert [x["event_id"] for x in again["results"]] == [x["event_id"] for x in res]


def test_batch_header_key_makes_per_item_keys(server):
    key = "hdr-" + uuid.uuid4().hex
    events = [{"event_type": "page_view"}, {"event_type": "page_view"}]
    r = server.post("/api/v1/events/batch", {"events": events}, role="ingest",
                    headers={"x-idempotency-key": key})
    assert [x["idempotency_key"] for x in r.json()["results"]] == [f"{key}:0", f"{key}:1"]
    again = server.post("/api/v1/events/batch", {"events": events}, role="ingest",
                        headers={"x-idempotency-key": key}).json()
    assert again["duplicates"] == 2


def test_batch_with_a_bad_event_stores_nothing(server):
    marker = "atomic-" + uuid.uuid4().hex
    events = [{"event_type": "ok_one", "idempotency_key": marker},
              {"event_type": "bad type"}, {"lead": []}]
    doc = problem(server.post("/api/v1/events/batch", {"events": events}, role="ingest"), 400)
    assert {"events[1].event_type", "events[2].event_type", "events[2].lead"} <= fields_of(doc)
    listed = server.get("/api/v1/events?event_type=ok_one").json()["items"]
    assert all(e["idempotency_key"] != marker for e in listed)


def test_empty_body_key_is_refused(server):
    doc = problem(server.ingest({"event_type": "x", "idempotency_key": ""}), 400)
    assert "idempotency_key" in fields_of(doc)


def test_batch_error_counts_events_not_fields(server):
    events = [{"event_type": "ok"}, {"event_type": "bad type", "lead": 1}, {"lead": []}]
    doc = problem(server.post("/api/v1/events/batch", {"events": events}, role="ingest"), 400)
    assert doc["detail"].startswith("2 of 3 events are invalid")
    assert doc["type"].endswith("/invalid-input")


def test_token_subject_becomes_source_only_when_a_name(server):
    eid = server.ingest({"event_type": "x"}).json()["event_id"]
    assert server.get(f"/api/v1/events/{eid}").json()["source"] == "ingest"  # the token's sub


def test_batch_limits(server):
    problem(server.post("/api/v1/events/batch", {"events": []}, role="ingest"), 400)
    problem(server.post("/api/v1/events/batch", {"nope": 1}, role="ingest"), 400)
    problem(server.post("/api/v1/events/batch", {"events": [1]}, role="ingest"), 400)
    doc = problem(server.post("/api/v1/events/batch",
                              {"events": [{"event_type": "x"}] * 1001}, role="ingest"), 400)
    assert "events" in fields_of(doc)
    r = server.post("/api/v1/events/batch", {"events": [{"event_type": "x"}] * 1000}, role="ingest")
    assert r.status_code == 202 and r.json()["accepted"] == 1000
