"""Crash safety, restarts, draining on SIGTERM, and back-pressure."""
import concurrent.futures as cf
import json
import threading
import time

import requests

from conftest import problem, sign


def signed_load(s, source, clients, seconds, interrupt):
    """Runs `clients` keep-alive clients sending distinct signed events with keys, calls
    interrupt() after `seconds`, and returns (acknowledged event ids, unexpected answers, what
    interrupt returned). 202 and, while draining, 503 are the expected answers; a refused or
    reset connection ends a client. Unexpected answers are returned, not raised: an exception
    in a client thread would never reach pytest."""
    acked, unexpected, stop = [], [], threading.Event()
    lock = threading.Lock()

    def client(n):
        sess = requests.Session()
        i = 0
        while not stop.is_set():
            body = json.dumps({"event_type": "page_view",
                               "lead": {"email": f"c{n}-{i}@x.example"}}).encode()
            try:
                r = sess.post(s.url + "/api/v1/events", data=body, timeout=10, headers={
                    "Content-Type": "application/json", "X-Source": source["slug"],
                    "X-Webhook-Signature": sign(body, source["secret"]),
                    "x-idempotency-key": f"k-{n}-{i}"})
            except requests.RequestException:
                return
            with lock:
                if r.status_code == 202:
                    acked.append(r.json()["event_id"])
                elif r.status_code != 503:
                    unexpected.append((r.status_code, r.text[:200]))
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    result = interrupt()
    stop.set()
    for t in threads:
        t.join()
    return acked, unexpected, result


def test_restart_resumes_pending(fresh_server):
    s = fresh_server
    s.env["LEADFLOW_WORKERS"] = "0"  # accept but do not process
    s.start()
    ids = [s.ingest({"event_type": "later"}).json()["event_id"] for _ in range(30)]
    assert s.get("/api/v1/events/status/pending").json()["pending"] == 30
    assert s.stop() == 0
    s.env["LEADFLOW_WORKERS"] = "2"
    s.start()
    s.wait_idle()
    for eid in ids:
        assert s.get(f"/api/v1/events/{eid}").json()["status"] == "processed"


def test_kill9_under_load_loses_no_acknowledged_event(fresh_server):
    s = fresh_server.start()
    acked, unexpected, _ = signed_load(s, s.create_source("load"), 8, 1.5, s.kill9)
    assert unexpected == []
    assert len(acked) > 50, "the load did not get going"
    s.start()
    missing = [eid for eid in acked if s.get(f"/api/v1/events/{eid}").status_code != 200]
    assert missing == [], f"{len(missing)} of {len(acked)} acknowledged events lost"
    s.wait_idle()  # and they all get processed after the restart


def test_sigterm_drains(fresh_server):
    s = fresh_server.start()
    slow = s.ingest({"event_type": "slow", "metadata": {"test_sleep_ms": 1500}}).json()["event_id"]
    time.sleep(0.4)  # a worker has it in hand now
    results = []

    def late_ingest():
        body = {"event_type": "during_drain"}
        try:
            results.append(s.ingest(body))
        except requests.RequestException as e:
            results.append(e)

    t = threading.Thread(target=late_ingest)
    t.start()
    t.join()
    start = time.time()
    rc = s.stop()
    assert rc == 0
    assert time.time() - start < 15
    assert "draining" in s.read_log() and "stopped" in s.read_log()
    s.env["LEADFLOW_WORKERS"] = "0"
    s.start()
    ev = s.get(f"/api/v1/events/{slow}").json()
    assert ev["status"] == "processed"  # the batch in hand was finished
    for r in results:
        if isinstance(r, requests.Response) and r.status_code == 202:
            assert s.get(f"/api/v1/events/{r.json()['event_id']}").status_code == 200


def test_full_queue_is_503_and_stores_nothing(fresh_server):
    s = fresh_server
    s.env["LEADFLOW_INGEST_QUEUE"] = "5"
    s.start()
    r = s.post("/api/v1/events/batch", {"events": [{"event_type": "q"}] * 6}, role="ingest")
    problem(r, 503)
    assert int(r.headers["Retry-After"]) >= 1
    assert s.get("/api/v1/events?event_type=q").json()["items"] == []
    assert s.post("/api/v1/events/batch", {"events": [{"event_type": "q"}] * 5},
                  role="ingest").status_code == 202


def test_many_concurrent_ingests_all_committed(fresh_server):
    s = fresh_server.start()

    def send(i):
        with requests.Session() as sess:
            return sess.post(s.url + "/api/v1/events", json={"event_type": "burst"},
                             headers={**s.auth("ingest"), "x-idempotency-key": f"b{i}"})

    with cf.ThreadPoolExecutor(32) as pool:
        codes = [r.status_code for r in pool.map(send, range(400))]
    assert codes.count(202) == 400
    metrics = requests.get(s.url + "/metrics").text
    commits = [l for l in metrics.splitlines() if l.startswith("leadflow_ingest_commits_total")]
    assert int(commits[0].split()[1]) < 400  # group commit batched them


def test_store_gone_health_503_and_ingest_refused(fresh_server):
    import os
    s = fresh_server.start()
    assert requests.get(s.url + "/health").status_code == 200
    s.token("ingest"), s.token("admin")  # minted from the file while it is there
    os.rename(s.db, s.db + ".moved")  # the configured file is gone
    r = requests.get(s.url + "/health")
    assert r.status_code == 503 and r.json()["status"] == "unavailable"
    doc = problem(s.ingest({"event_type": "lost"}), 503)
    assert "nothing was kept" in doc["detail"]
    assert int(s.ingest({"event_type": "lost"}).headers["Retry-After"]) >= 1
    os.rename(s.db + ".moved", s.db)
    assert requests.get(s.url + "/health").status_code == 200
    assert s.ingest({"event_type": "back"}).status_code == 202


def test_slow_client_is_timed_out(fresh_server):
    import socket
    s = fresh_server
    s.env["LEADFLOW_HTTP_TIMEOUT"] = "1"
    s.start()
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    sock.settimeout(10)
    start = time.time()
    data = sock.recv(4096)  # the server closes the stalled connection
    assert data == b"" or b"HTTP/1.1" in data
    assert time.time() - start < 8
    sock.close()


def test_sigterm_under_keepalive_ingest_load_exits_cleanly(fresh_server):
    """SIGTERM once stopped libmicrohttpd with requests still suspended and aborted."""
    s = fresh_server.start()
    # SIGTERM while 32 keep-alive clients keep sending
    acked, unexpected, rc = signed_load(s, s.create_source("drainload"), 32, 1.0, s.stop)
    assert unexpected == []
    assert rc == 0, s.read_log()[-2000:]
    assert "suspended connections" not in s.read_log()
    s.start()
    missing = [e for e in acked if s.get(f"/api/v1/events/{e}").status_code != 200]
    assert missing == [] and len(acked) > 50


def test_non_utf8_bytes_in_requests_do_not_crash(fresh_server):
    """Raw bytes quoted in an error message once made json_pack fail and the server crash."""
    import socket
    s = fresh_server.start()
    for raw in (b"GET /%ff HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: text/\xff\r\n"
                b"Content-Length: 2\r\n\r\n{}",
                b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-Source: \xff\xfe\r\nX-Webhook-Signature: sha256=00\r\nContent-Length: 2\r\n\r\n{}"):
        sock = socket.create_connection(("127.0.0.1", s.port))
        sock.sendall(raw)
        head = sock.recv(4096)
        sock.close()
        assert head.startswith(b"HTTP/1.1 4"), head
    # a multi-byte key quoted in a 409 whose message is cut mid-character (85 x 3 bytes)
    ev = {"event_type": "x", "idempotency_key": "\u20ac" * 85}
    assert s.ingest(ev).status_code == 202
    doc = problem(s.ingest(ev), 409)
    assert doc["event_id"]
    # a non-ASCII field name cut inside an error is still reported
    doc = problem(s.ingest({"event_type": "x", "lead": {"\u20ac" * 30: [1, 2]}}), 400)
    assert doc["errors"]
    assert requests.get(s.url + "/health").status_code == 200
