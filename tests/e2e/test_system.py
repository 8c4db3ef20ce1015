"""Health, metrics, the OpenAPI document, routing errors and request ids."""
import requests

from conftest import problem


def test_health_reports_store(server):
    r = requests.get(server.url + "/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["store"] == "ok" and body["engine"] == "sqlite"


def test_metrics_prometheus_text(server, source):
    import time
    server.send_signed(source, {"event_type": "page_view"})
    line = 'leadflow_http_requests_total{route="POST /api/v1/events",status="202"}'
    for _ in range(100):  # counted when the request completes, just after the answer
        r = requests.get(server.url + "/metrics")
        if line in r.text:
            break
        time.sleep(0.02)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    for name in ("leadflow_events_ingested_total", "leadflow_events_processed_total",
                 "leadflow_events_failed_total", "leadflow_events_pending",
                 "leadflow_http_request_duration_seconds_bucket",
                 "leadflow_ingest_batch_size_bucket",
                 "leadflow_ingest_commit_duration_seconds_count"):
        assert name in text, name
    assert 'leadflow_http_requests_total{route="POST /api/v1/events",status="202"}' in text


def test_openapi_document(server):
    r = requests.get(server.url + "/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert "/api/v1/events" in doc["paths"]


def test_unknown_path_is_404_problem(server):
    problem(server.get("/api/v1/nope"), 404)


def test_wrong_method_is_405_with_allow(server):
    r = server.delete("/api/v1/events")
    problem(r, 405)
    assert "GET" in r.headers["Allow"] and "POST" in r.headers["Allow"]


def test_request_id_echoed_or_made(server):
    r = requests.get(server.url + "/health", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    r = requests.get(server.url + "/health")
    assert len(r.headers["X-Request-Id"]) == 36


def test_access_log_line_per_request(server):
    import time
    requests.get(server.url + "/health", headers={"X-Request-Id": "log-me-please"})
    for _ in range(100):  # the line is written when the request completes, just after the answer
        lines = [l for l in server.read_log().splitlines() if "log-me-please" in l]
        if lines:
            break
        time.sleep(0.02)
    assert lines and '"msg":"request"' in lines[-1] and '"status":200' in lines[-1]


def test_second_server_on_a_port_in_use_refuses_to_start(server, tmp_path):
    """SO_REUSEPORT once let two servers share a port (and split traffic between databases)."""
    from conftest import Server
    other = Server(tmp_path, LEADFLOW_LISTEN=f"127.0.0.1:{server.port}")
    out = other.cli("serve", check=False)
    assert out.returncode != 0 and "cannot listen" in out.stderr


def test_no_warning_at_start(server):
    assert "is not the first option" not in server.read_log()
