"""Local webhook receivers and an independent signature check, for the end-to-end tests.

Receiver: an HTTP server on 127.0.0.1 (a free port) in a daemon thread. It records every
request (method, path, headers, raw body, arrival time) and answers from a script: a queue of
answers used in order, then a default; each answer may be late (delay), carry Retry-After, or
drop the connection without a reply. It can be stopped and started again on the same port, so
a subscriber can be "down for a while" (connection refused) and come back.

Verifier: one long-lived `node js/verify.js` process that checks a request with the npm package
`standardwebhooks` (an implementation independent of leadflow's). scripts/run-tests installs
the package (npm ci in tests/e2e/js); verifier() does the same when node_modules is missing.

Neither depends on conftest, so any test module can import them.
"""
import atexit
import base64
import collections
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
VERIFY_JS = os.path.join(JS_DIR, "verify.js")


# --------------------------------------------------------------------------------------------
# the receiver

class Request:
    """One request as it arrived. headers: lower-case names → values."""

    def __init__(self, method, path, headers, body, at):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.time = at  # arrival, wall clock (time.time())
        # what the receiver answered (None: not yet, or never: dropped, stopped, sender gone;
        # a sender killed mid-answer may still show the status, the kernel took the bytes)
        self.status = None

    @property
    def id(self):
        return self.headers.get("webhook-id")

    @property
    def timestamp(self):
        ts = self.headers.get("webhook-timestamp")
        return int(ts) if ts is not None else None

    @property
    def signatures(self):
        return self.headers.get("webhook-signature", "").split()

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return (f"<{self.method} {self.path} id={self.id} ts={self.timestamp} "
                f"answered={self.status} {self.body[:80]!r}>")


def answer(status=200, delay=0.0, retry_after=None, headers=None, body=b"ok", drop=False):
    """One scripted answer. delay: seconds before replying; retry_after: the Retry-After value
    (seconds or an HTTP date); drop: close the connection without a reply."""
    return {"status": status, "delay": delay, "retry_after": retry_after,
            "headers": dict(headers or {}), "body": body, "drop": drop}


def _as_answer(a):
    if isinstance(a, int):
        return answer(a)
    if isinstance(a, dict):
        return answer(**a)
    raise TypeError(f"an answer is a status code or a dict of answer()'s arguments, not {a!r}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the dispatcher uses it

    def setup(self):
        super().setup()
        self.server.receiver._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.receiver._track(self.connection, False)

    def log_message(self, *args):  # quiet
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _serve(self):
        rec = self.server.receiver
        req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                      self._body(), time.time())
        a = rec._record(req)
        if a["delay"]:
            time.sleep(a["delay"])
        if a["drop"] or not rec.running:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        body = a["body"] if isinstance(a["body"], bytes) else str(a["body"]).encode()
        req.status = a["status"]  # before the client can read it: a test may look at once
        try:
            self.send_response(a["status"])
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            if a["retry_after"] is not None:
                self.send_header("Retry-After", str(a["retry_after"]))
            for k, v in a["headers"].items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            req.status = None  # the sender went away
            raise

    do_POST = do_PUT = do_GET = do_PATCH = do_DELETE = _serve


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the dispatcher opens many connections at once (default 5)

    def handle_error(self, request, client_address):  # a dropped or cut connection: expected
        pass


class Receiver:
    """A scripted HTTP receiver. Use as a context manager, or call start() and stop().

        r = Receiver(default=200).start()
        r.script(500, 500, {"status": 429, "retry_after": 2})   # then the default
        sub = create_subscription(url=r.url)
        r.wait(1)  → [Request, …]

    answer_fn: optional callable(Request) → a status, an answer() dict, or None (then the
    script / default applies); it is consulted first, e.g. to answer per path.
    """

    def __init__(self, default=200, delay=0.0, retry_after=None, answer_fn=None):
        self.default = answer(default, delay=delay, retry_after=retry_after)
        self.answer_fn = answer_fn
        self.requests = []
        self._script = collections.deque()
        self._lock = threading.Condition()
        self._conns = set()
        self._httpd = None
        self._thread = None
        self.port = None

    # --- control
    @property
    def running(self):
        return self._httpd is not None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self):
        """Starts serving (again, on the same port after a stop)."""
        assert self._httpd is None, "already running"
        httpd = _HTTPServer(("127.0.0.1", self.port or 0), _Handler)
        httpd.receiver = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"receiver-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stops listening and cuts every open connection (a later connect is refused)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)

    def restart(self):
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start() if not self.running else self

    def __exit__(self, *exc):
        self.stop()

    # --- script
    def script(self, *answers, default=None):
        """Queues answers (status codes or answer() dicts), used in order; then the default
        (which `default` replaces when given)."""
        with self._lock:
            self._script.extend(_as_answer(a) for a in answers)
            if default is not None:
                self.default = _as_answer(default)
        return self

    def clear(self):
        """Forgets the recorded requests and the queued answers."""
        with self._lock:
            self.requests.clear()
            self._script.clear()

    # --- what arrived
    def wait(self, n=1, timeout=10.0, match=None):
        """Waits until n requests (those match(req) accepts, when given) arrived; returns them.
        Raises AssertionError with what did arrive on timeout."""
        deadline = time.time() + timeout
        with self._lock:
            while True:
                got = [r for r in self.requests if match is None or match(r)]
                if len(got) >= n:
                    return got
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"receiver {self.url}: {len(got)} of {n} requests "
                                         f"arrived in {timeout} s: {self.requests[-10:]}")
                self._lock.wait(min(left, 0.2))

    def wait_ids(self, ids, timeout=10.0):
        """Waits until a request with each webhook-id in ids arrived; returns {id: [Request]}."""
        ids = set(ids)
        deadline = time.time() + timeout
        with self._lock:
            while True:
                seen = self.by_id()
                if ids <= set(seen):
                    return seen
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"receiver {self.url}: {len(ids - set(seen))} of "
                                         f"{len(ids)} ids never arrived in {timeout} s")
                self._lock.wait(min(left, 0.2))

    def by_id(self):
        """{webhook-id: [Request, …]} in arrival order."""
        with self._lock:
            out = collections.defaultdict(list)
            for r in self.requests:
                out[r.id].append(r)
            return dict(out)

    def quiet(self, seconds=0.5):
        """Sleeps, then returns the requests that arrived meanwhile (to assert none did)."""
        n = len(self.requests)
        time.sleep(seconds)
        with self._lock:
            return self.requests[n:]

    # --- internals
    def _track(self, conn, add):
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _record(self, req):
        chosen = None
        if self.answer_fn is not None:
            got = self.answer_fn(req)
            chosen = _as_answer(got) if got is not None else None
        with self._lock:
            self.requests.append(req)
            if chosen is None:
                chosen = self._script.popleft() if self._script else self.default
            self._lock.notify_all()
        return chosen


# --------------------------------------------------------------------------------------------
# the independent verifier (npm standardwebhooks)

def js_ready():
    """True when tests/e2e/js has node_modules at least as new as its package-lock.json."""
    mods = os.path.join(JS_DIR, "node_modules", "standardwebhooks")
    lock = os.path.join(JS_DIR, "package-lock.json")
    return os.path.isdir(mods) and os.path.getmtime(os.path.join(JS_DIR, "node_modules")) >= \
        os.path.getmtime(lock)


def install_js():
    """npm ci in tests/e2e/js when its node_modules is missing or older than the lock file
    (what scripts/run-tests does before pytest)."""
    if js_ready():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: run scripts/install-deps")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True,
                   stdout=subprocess.DEVNULL, timeout=300)


class Verifier:
    """One `node verify.js` process; check() sends it a request line and reads the answer."""

    def __init__(self):
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed: run scripts/install-deps")
        install_js()
        self._lock = threading.Lock()
        self.proc = subprocess.Popen([node, VERIFY_JS], cwd=JS_DIR, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def check(self, secret, headers, body, now=None):
        """Runs `new Webhook(secret).verify(body, headers)` as of `now` (unix seconds; default
        the wall clock). body: bytes or str. Returns (True, payload) or (False, error)."""
        req = {"secret": secret, "headers": dict(headers)}
        if isinstance(body, bytes):
            req["body_b64"] = base64.b64encode(body).decode()
        else:
            req["body"] = body
        if now is not None:
            req["now"] = now
        with self._lock:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"verify.js exited ({self.proc.poll()})")
        ans = json.loads(line)
        return (True, ans["payload"]) if ans["ok"] else (False, ans["error"])

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_verifier = None
_verifier_lock = threading.Lock()


def verifier():
    """The process-wide Verifier (started on first use, closed at exit)."""
    global _verifier
    with _verifier_lock:
        if _verifier is None or _verifier.proc.poll() is not None:
            _verifier = Verifier()
            atexit.register(_verifier.close)
        return _verifier


def verify(secret, req, now=None):
    """Checks a recorded Request with the npm package: (True, payload) or (False, error).
    now: the sender's clock (unix seconds) when it arrived; default the arrival's wall time."""
    return verifier().check(secret, req.headers, req.body, now if now is not None else req.time)
