"""The sources resource and per-source rate limits."""
import time

from conftest import fields_of, problem


def test_create_shows_secret_once(server):
    src = server.create_source("crm", rate_limit_per_s=50)
    assert src["secret"].startswith("whsec_") and len(src["secret"]) > 40
    assert src["slug"] == "crm" and src["rate_limit_per_s"] == 50 and src["is_active"] is True
    got = server.get(f"/api/v1/sources/{src['id']}").json()
    assert "secret" not in got and got["slug"] == "crm"
    listed = server.get("/api/v1/sources").json()
    assert any(s["id"] == src["id"] for s in listed["items"])
    assert all("secret" not in s for s in listed["items"])


def test_create_validation(server):
    doc = problem(server.post("/api/v1/sources", {"slug": "Bad Slug!", "rate_limit_per_s": -1}), 400)
    assert {"slug", "name", "rate_limit_per_s"} <= fields_of(doc)
    server.create_source("dup")
    doc = problem(server.post("/api/v1/sources", {"slug": "dup", "name": "Again"}), 409)
    assert "slug" in fields_of(doc)


def test_patch_rotate_and_delete(server):
    src = server.create_source("rot")
    r = server.patch(f"/api/v1/sources/{src['id']}", {"rotate_secret": True, "name": "Rotated"})
    assert r.status_code == 200
    new = r.json()
    assert new["name"] == "Rotated" and new["secret"] != src["secret"]
    # the old secret no longer signs; the new one does
    time.sleep(0.05)
    problem(server.send_signed(src, {"event_type": "x"}), 401)
    assert server.send_signed(src, {"event_type": "x"}, secret=new["secret"]).status_code == 202
    doc = problem(server.patch(f"/api/v1/sources/{src['id']}", {"secret": "mine", "slug": "x"}), 400)
    assert {"secret", "slug"} <= fields_of(doc)
    assert server.delete(f"/api/v1/sources/{src['id']}").status_code == 204
    problem(server.get(f"/api/v1/sources/{src['id']}"), 404)
    problem(server.delete(f"/api/v1/sources/{src['id']}"), 404)
    time.sleep(0.05)
    problem(server.send_signed(src, {"event_type": "x"}, secret=new["secret"]), 401)


def test_list_pagination(server):
    for i in range(5):
        server.create_source(f"page-{i}")
    seen, cursor = [], None
    while True:
        q = "/api/v1/sources?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = server.get(q).json()
        assert len(page["items"]) <= 2
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) and len(seen) >= 5
    assert seen == sorted(seen)
    problem(server.get("/api/v1/sources?limit=0"), 400)
    problem(server.get("/api/v1/sources?limit=501"), 400)
    problem(server.get("/api/v1/sources?cursor=nonsense"), 400)


def test_rate_limit_429_with_retry_after(server):
    src = server.create_source("slow", rate_limit_per_s=5)
    codes = [server.send_signed(src, {"event_type": "x"}).status_code for _ in range(8)]
    assert codes[:5] == [202] * 5
    assert 429 in codes[5:]
    r = server.send_signed(src, {"event_type": "x"})
    if r.status_code == 429:
        problem(r, 429)
        assert int(r.headers["Retry-After"]) >= 1
    time.sleep(1.1)
    assert server.send_signed(src, {"event_type": "x"}).status_code == 202


def test_rate_limit_counts_batch_events(server):
    import json
    from conftest import sign
    src = server.create_source("batchy", rate_limit_per_s=10)

    def batch(n):
        body = json.dumps({"events": [{"event_type": "x"}] * n}).encode()
        return server.http.post(server.url + "/api/v1/events/batch", data=body, headers={
            "Content-Type": "application/json", "X-Source": "batchy",
            "X-Webhook-Signature": sign(body, src["secret"])})

    assert batch(8).status_code == 202
    r = batch(8)  # 2 tokens left: wait and retry helps
    problem(r, 429)
    assert int(r.headers["Retry-After"]) >= 1
    # a batch larger than the rate can never pass: a 400 that says so, not a 429
    doc = problem(batch(20), 400)
    assert "events" in fields_of(doc) and "smaller batches" in doc["detail"]
