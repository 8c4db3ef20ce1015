"""Tokens, roles, tenants and ingest signatures."""
import json
import time
import uuid

import requests

from conftest import JWT_SECRET, problem, sign, stdwebhook_sign


def test_missing_token_is_401(server):
    r = requests.get(server.url + "/api/v1/events")
    assert problem(r, 401)
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_garbage_and_forged_tokens_are_401(server):
    for tok in ("garbage", "a.b.c", server.token() + "x"):
        r = requests.get(server.url + "/api/v1/events", headers={"Authorization": "Bearer " + tok})
        problem(r, 401)
    # A token signed with another secret
    other = server.cli("token", "--tenant", "default", "--role", "admin",
                       env={"LEADFLOW_JWT_SECRET": "another-secret-0123456789"}).stdout.strip()
    problem(requests.get(server.url + "/api/v1/events",
                         headers={"Authorization": "Bearer " + other}), 401)


def test_alg_none_token_is_401(server):
    import base64

    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    tok = b64({"alg": "none", "typ": "JWT"}) + "." + b64(
        {"sub": "x", "tenant": "default", "role": "admin", "exp": int(time.time()) + 600}) + "."
    problem(requests.get(server.url + "/api/v1/events",
                         headers={"Authorization": "Bearer " + tok}), 401)


def test_expired_token_is_401(server):
    tok = server.cli("token", "--tenant", "default", "--role", "admin", "--ttl", "1s").stdout.strip()
    time.sleep(2.1)
    doc = problem(requests.get(server.url + "/api/v1/events",
                               headers={"Authorization": "Bearer " + tok}), 401)
    assert "expired" in doc["detail"]


def test_roles_are_enforced(server):
    problem(server.get("/api/v1/sources", role="viewer"), 403)
    problem(server.get("/api/v1/sources", role="ingest"), 403)
    problem(server.get("/api/v1/events", role="ingest"), 403)
    assert server.get("/api/v1/events", role="viewer").status_code == 200
    problem(server.post("/api/v1/events/replay", {"status": "failed"}, role="sales"), 403)
    problem(server.post("/api/v1/events", {"event_type": "x"}, role="viewer"), 403)
    assert server.post("/api/v1/events", {"event_type": "x"}, role="ingest").status_code == 202
    assert server.post("/api/v1/events", {"event_type": "x"}, role="admin").status_code == 202


def test_token_cli_refuses_unknown_tenant_and_role(server):
    out = server.cli("token", "--tenant", "nope", "--role", "admin", check=False)
    assert out.returncode != 0 and "no tenant" in out.stderr
    out = server.cli("token", "--tenant", "default", "--role", "root", check=False)
    assert out.returncode != 0 and "unknown role" in out.stderr


def test_other_tenant_sees_nothing(server, source):
    server.cli("tenant", "add", "acme", "Acme Inc")
    r = server.send_signed(source, {"event_type": "page_view"})
    event_id = r.json()["event_id"]
    problem(server.get(f"/api/v1/events/{event_id}", tenant="acme"), 404)
    listed = server.get("/api/v1/events?limit=500", tenant="acme").json()["items"]
    assert all(e["id"] != event_id for e in listed)
    problem(server.get(f"/api/v1/sources/{source['id']}", tenant="acme"), 404)
    problem(server.post(f"/api/v1/events/{event_id}/replay", tenant="acme"), 404)
    assert server.get("/api/v1/sources", tenant="acme").json()["items"] == []
    # acme's own ingest lands in acme
    mine = server.ingest({"event_type": "acme_thing"}, tenant="acme").json()["event_id"]
    assert server.get(f"/api/v1/events/{mine}", tenant="acme").status_code == 200
    problem(server.get(f"/api/v1/events/{mine}"), 404)


def test_source_signature_required_and_checked(server, source):
    body = json.dumps({"event_type": "download"}).encode()
    url = server.url + "/api/v1/events"
    ct = {"Content-Type": "application/json"}
    problem(requests.post(url, data=body, headers=ct), 401)
    problem(requests.post(url, data=body, headers={**ct, "X-Source": "portal"}), 401)
    problem(requests.post(url, data=body, headers={**ct, "X-Source": "portal",
                                                   "X-Webhook-Signature": "sha256=00"}), 401)
    problem(requests.post(url, data=body, headers={**ct, "X-Source": "portal",
            "X-Webhook-Signature": sign(body, "whsec_wrong")}), 401)
    problem(requests.post(url, data=body, headers={**ct, "X-Source": "unknown",
            "X-Webhook-Signature": sign(body, source["secret"])}), 401)
    # signature over a different body
    problem(requests.post(url, data=body + b" ", headers={**ct, "X-Source": "portal",
            "X-Webhook-Signature": sign(body, source["secret"])}), 401)
    ok = requests.post(url, data=body, headers={**ct, "X-Source": "portal",
                       "X-Webhook-Signature": sign(body, source["secret"])})
    assert ok.status_code == 202, ok.text
    ev = server.get(f"/api/v1/events/{ok.json()['event_id']}").json()
    assert ev["source"] == "portal"


def test_body_source_must_match_signer(server, source):
    r = server.send_signed(source, {"event_type": "download", "source": "someone-else"})
    doc = problem(r, 400)
    assert "source" in {e["field"] for e in doc["errors"]}


def test_standard_webhooks(server, source):
    body = json.dumps({"event_type": "email_replied", "lead": {"email": "sw@x.example"}}).encode()
    msg_id = "msg_" + uuid.uuid4().hex
    now = int(time.time())

    def post(ts, sig, mid=msg_id, src="portal"):
        return requests.post(server.url + "/api/v1/events?source=" + src, data=body, headers={
            "Content-Type": "application/json", "webhook-id": mid,
            "webhook-timestamp": str(ts), "webhook-signature": sig})

    r = post(now, stdwebhook_sign(source["secret"], msg_id, now, body))
    assert r.status_code == 202, r.text
    assert r.json()["idempotency_key"] == msg_id  # webhook-id is the idempotency key
    # the same message again: 409 with the original id
    again = post(now, stdwebhook_sign(source["secret"], msg_id, now, body))
    assert problem(again, 409)["event_id"] == r.json()["event_id"]
    # webhook-id wins over an idempotency_key in the body
    body2 = json.dumps({"event_type": "x", "idempotency_key": "from-body"}).encode()
    mid2 = "msg_" + uuid.uuid4().hex
    r2 = requests.post(server.url + "/api/v1/events?source=portal", data=body2, headers={
        "Content-Type": "application/json", "webhook-id": mid2, "webhook-timestamp": str(now),
        "webhook-signature": stdwebhook_sign(source["secret"], mid2, now, body2)})
    assert r2.status_code == 202 and r2.json()["idempotency_key"] == mid2
    # stale and future timestamps
    for ts in (now - 301, now + 301):
        problem(post(ts, stdwebhook_sign(source["secret"], msg_id + "x", ts, body), msg_id + "x"), 401)
    # wrong signature; missing header
    problem(post(now, "v1,AAAA", "msg_other"), 401)
    r = requests.post(server.url + "/api/v1/events?source=portal", data=body,
                      headers={"Content-Type": "application/json", "webhook-id": "m1"})
    problem(r, 401)


def test_disabled_source_is_403(server):
    src = server.create_source("paused")
    assert server.patch(f"/api/v1/sources/{src['id']}", {"is_active": False}).status_code == 200
    time.sleep(0.05)
    problem(server.send_signed(src, {"event_type": "x"}), 403)
    server.patch(f"/api/v1/sources/{src['id']}", {"is_active": True})
    assert server.send_signed(src, {"event_type": "x"}).status_code == 202


def test_serve_refuses_without_jwt_secret(fresh_server):
    fresh_server.env.pop("LEADFLOW_JWT_SECRET")
    out = fresh_server.cli("serve", check=False)
    assert out.returncode != 0
    assert "LEADFLOW_JWT_SECRET" in out.stderr


def test_huge_exp_does_not_overflow(server):
    """exp * 1000 once overflowed (undefined behaviour) for a far-future expiry."""
    import base64
    import hashlib
    import hmac as hm

    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    head = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64(
        {"sub": "x", "tenant": "default", "role": "viewer", "exp": 2**62})
    sig = base64.urlsafe_b64encode(hm.new(JWT_SECRET.encode(), head.encode(), hashlib.sha256)
                                   .digest()).rstrip(b"=").decode()
    r = requests.get(server.url + "/api/v1/events", headers={"Authorization": f"Bearer {head}.{sig}"})
    assert r.status_code == 200


def test_bearer_ingest_is_refused_before_the_body(server):
    """A bad token on an ingest route is answered from the headers, without reading 1 MiB."""
    r = requests.post(server.url + "/api/v1/events", data=b"x" * 900000,
                      headers={"Authorization": "Bearer nope", "Content-Type": "application/json"})
    problem(r, 401)


def test_client_keys_may_not_use_the_domain_prefix(server):
    problem(server.ingest({"event_type": "x", "idempotency_key": "leadflow:lead.created:x:y"}), 400)
    problem(server.ingest({"event_type": "x"}, key="leadflow:anything"), 400)
