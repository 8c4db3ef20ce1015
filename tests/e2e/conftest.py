"""End-to-end fixtures: the real leadflow binary, on a free port, with a throwaway SQLite file.

Every server listens on 127.0.0.1 only and is stopped when its test (or module) ends; a
watchdog kills any server still running when the test session exits.
"""
import atexit
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import time
import uuid

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("LEADFLOW_BIN", os.path.join(ROOT, "build-test", "leadflow"))
JWT_SECRET = "e2e-secret-0123456789abcdef"
_live = set()


@atexit.register
def _kill_leftovers():
    for proc in list(_live):
        if proc.poll() is None:
            proc.kill()


def sign(body: bytes, secret: str) -> str:
    """X-Webhook-Signature value: HMAC-SHA256 over the raw body, keyed by the whole secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def stdwebhook_sign(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class Server:
    """One leadflow process and its database directory."""

    def __init__(self, tmpdir, **env):
        self.dir = str(tmpdir)
        self.db = os.path.join(self.dir, "leadflow.db")
        self.log_path = os.path.join(self.dir, "server.log")
        self.env = dict(os.environ)
        self.env.update({
            "LEADFLOW_DB": self.db,
            "LEADFLOW_JWT_SECRET": JWT_SECRET,
            "LEADFLOW_LISTEN": "127.0.0.1:0",
            "LEADFLOW_WORKERS": "2",
            "LEADFLOW_TEST_STAGES": "1",
            "LEADFLOW_RETRY_BASE_MS": "200",
            # Webhook receivers in tests listen on 127.0.0.1.
            "LEADFLOW_ALLOW_PRIVATE_TARGETS": "1",
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
        })
        self.env.update({k: str(v) for k, v in env.items()})
        self.proc = None
        self.port = None
        self._tokens = {}
        self.http = requests.Session()

    # --- process control
    def cli(self, *args, check=True, env=None):
        e = dict(self.env)
        e.update(env or {})
        out = subprocess.run([BIN, *args], env=e, capture_output=True, text=True, timeout=60)
        if check and out.returncode != 0:
            raise AssertionError(f"leadflow {' '.join(args)} failed: {out.stderr}")
        return out

    def start(self, timeout=20):
        self.log = open(self.log_path, "a")
        offset = self.log.tell()
        self.proc = subprocess.Popen([BIN, "serve"], env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        _live.add(self.proc)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("leadflow exited at start:\n" + self.read_log(offset))
            for line in self.read_log(offset).splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("msg") == "leadflow serving":
                    self.port = rec["port"]
                    self.http = requests.Session()
                    return self
            time.sleep(0.02)
        raise AssertionError("leadflow did not start:\n" + self.read_log(offset))

    def read_log(self, offset=0):
        with open(self.log_path) as f:
            f.seek(offset)
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        _live.discard(self.proc)
        self.proc = None
        self.log.close()
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self, **env):
        self.stop()
        self.env.update({k: str(v) for k, v in env.items()})
        return self.start()

    # --- HTTP
    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def token(self, role="admin", tenant="default", ttl="1h"):
        key = (role, tenant, ttl)
        if key not in self._tokens:
            self._tokens[key] = self.cli("token", "--tenant", tenant, "--role", role,
                                         "--ttl", ttl).stdout.strip()
        return self._tokens[key]

    def auth(self, role="admin", tenant="default"):
        return {"Authorization": f"Bearer {self.token(role, tenant)}"}

    def get(self, path, role="admin", tenant="default", **kw):
        headers = {**self.auth(role, tenant), **kw.pop("headers", {})}
        return self.http.get(self.url + path, headers=headers, timeout=30, **kw)

    def post(self, path, body=None, role="admin", tenant="default", **kw):
        headers = {**self.auth(role, tenant), **kw.pop("headers", {})}
        return self.http.post(self.url + path, json=body, headers=headers, timeout=30, **kw)

    def patch(self, path, body, role="admin", tenant="default"):
        return self.http.patch(self.url + path, json=body, headers=self.auth(role, tenant),
                               timeout=30)

    def put(self, path, body, role="admin", tenant="default"):
        return self.http.put(self.url + path, json=body, headers=self.auth(role, tenant),
                             timeout=30)

    def delete(self, path, role="admin", tenant="default"):
        return self.http.delete(self.url + path, headers=self.auth(role, tenant), timeout=30)

    def create_source(self, slug=None, tenant="default", **fields):
        slug = slug or "src-" + uuid.uuid4().hex[:8]
        r = self.post("/api/v1/sources", {"slug": slug, "name": slug.title(), **fields},
                      tenant=tenant)
        assert r.status_code == 201, r.text
        return r.json()

    def send_signed(self, source, event, key=None, secret=None, headers=None):
        body = json.dumps(event).encode()
        h = {"Content-Type": "application/json", "X-Source": source["slug"],
             "X-Webhook-Signature": sign(body, secret or source["secret"])}
        if key:
            h["x-idempotency-key"] = key
        h.update(headers or {})
        return self.http.post(self.url + "/api/v1/events", data=body, headers=h, timeout=30)

    def ingest(self, event, key=None, role="ingest", tenant="default"):
        headers = {"x-idempotency-key": key} if key else {}
        return self.post("/api/v1/events", event, role=role, tenant=tenant, headers=headers)

    def wait_processed(self, event_id, timeout=15, status=("processed",)):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.get(f"/api/v1/events/{event_id}")
            if r.status_code == 200 and r.json()["status"] in status:
                return r.json()
            time.sleep(0.05)
        raise AssertionError(f"event {event_id} not {status}: {r.text}")

    def add_erasure(self, email):
        """Puts an email on the default tenant's erasure list, as the GDPR erase will."""
        import hashlib
        import sqlite3
        db = sqlite3.connect(self.db, timeout=10)
        tid = db.execute("SELECT id FROM tenants WHERE slug = 'default'").fetchone()[0]
        db.execute("INSERT INTO erasures (id, tenant_id, email_hash, erased_at) VALUES (?, ?, ?, 0)",
                   (str(uuid.uuid4()), tid, hashlib.sha256(email.encode()).hexdigest()))
        db.commit()
        db.close()

    def wait_idle(self, timeout=30, tenant="default"):
        """Waits until none of the tenant's events is pending."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.get("/api/v1/events/status/pending", tenant=tenant)
            if r.status_code == 200 and r.json()["pending"] == 0:
                return
            time.sleep(0.05)
        raise AssertionError("events still pending: " + r.text)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server shared by the tests of one module."""
    s = Server(tmp_path_factory.mktemp("lf")).start()
    yield s
    rc = s.stop()
    assert rc == 0, "leadflow did not exit cleanly:\n" + s.read_log()[-4000:]


@pytest.fixture
def fresh_server(tmp_path):
    """A server of the test's own, for restarts and crashes. Call .start() yourself."""
    s = Server(tmp_path)
    yield s
    if s.proc is not None:
        s.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def source(server):
    return server.create_source("portal")


def problem(r, status):
    """Asserts r is a problem document with status and returns it."""
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json"), r.headers
    doc = r.json()
    assert doc["status"] == status and doc["title"] and doc["detail"] and doc["type"]
    return doc


def fields_of(doc):
    return {e["field"] for e in doc.get("errors", [])}


def uniq(p="x"):
    return f"{p}-{uuid.uuid4().hex[:8]}"


class Tenant:
    """A tenant of the shared server (seeded with the defaults) whose scoring and intent rules
    are removed unless keep_rules, so only the rules a test writes apply."""

    def __init__(self, server, keep_rules=False):
        self.s = server
        self.slug = uniq("t")
        server.cli("tenant", "add", self.slug, "Test " + self.slug)
        deadline = time.time() + 10
        while self.get("/api/v1/leads").status_code != 200:  # the auth cache reloads every 2 s
            assert time.time() < deadline
            time.sleep(0.1)
        if not keep_rules:
            for kind in ("scoring", "intent"):
                for rule in self.get(f"/api/v1/{kind}/rules").json()["items"]:
                    assert self.delete(f"/api/v1/{kind}/rules/{rule['id']}").status_code == 204

    def get(self, path, **kw):
        return self.s.get(path, tenant=self.slug, **kw)

    def post(self, path, body=None, **kw):
        return self.s.post(path, body, tenant=self.slug, **kw)

    def patch(self, path, body):
        return self.s.patch(path, body, tenant=self.slug)

    def delete(self, path):
        return self.s.delete(path, tenant=self.slug)

    def put(self, path, body):
        return self.s.put(path, body, tenant=self.slug)

    def rule(self, **fields):
        body = {"slug": uniq("r"), "name": "rule", "event_type": "page_view", "points": 1,
                "category": "engagement"}
        body.update(fields)
        r = self.post("/api/v1/scoring/rules", body)
        assert r.status_code == 201, r.text
        return r.json()

    def intent_rule(self, **fields):
        body = {"slug": uniq("i"), "intent": "research", "event_type": "download", "points": 10}
        body.update(fields)
        r = self.post("/api/v1/intent/rules", body)
        assert r.status_code == 201, r.text
        return r.json()

    def send(self, event_type, email, occurred_at=None, metadata=None, **lead):
        ev = {"event_type": event_type, "lead": {"email": email, **lead}}
        if occurred_at:
            ev["occurred_at"] = occurred_at
        if metadata:
            ev["metadata"] = metadata
        r = self.s.ingest(ev, tenant=self.slug)
        assert r.status_code == 202, r.text
        eid = r.json()["event_id"]
        deadline = time.time() + 15
        while True:
            got = self.get(f"/api/v1/events/{eid}")
            if got.status_code == 200 and got.json()["status"] == "processed":
                return got.json()
            assert time.time() < deadline, got.text
            time.sleep(0.03)

    def lead(self, lead_id):
        r = self.get(f"/api/v1/leads/{lead_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_idle(self, timeout=30):
        self.s.wait_idle(timeout, tenant=self.slug)

    def domain_events(self, event_type, lead_id):
        self.wait_idle()
        r = self.get("/api/v1/events", params={"event_type": event_type, "lead_id": lead_id})
        assert r.status_code == 200, r.text
        return r.json()["items"]
