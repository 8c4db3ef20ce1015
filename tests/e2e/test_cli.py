"""The command line: migrate, seed, tenants, tokens, replay, version, config."""
import subprocess
import time

from conftest import BIN, Server


def test_version_and_help():
    out = subprocess.run([BIN, "version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("leadflow ")
    out = subprocess.run([BIN, "bogus"], capture_output=True, text=True)
    assert out.returncode == 2 and "usage" in out.stderr


def test_config_lists_every_variable():
    out = subprocess.run([BIN, "config"], capture_output=True, text=True).stdout
    for key in ("LEADFLOW_DB", "LEADFLOW_LISTEN", "LEADFLOW_JWT_SECRET", "LEADFLOW_WORKERS",
                "LEADFLOW_SYNC", "SLACK_WEBHOOK_URL", "MOCO_API_KEY", "ENABLE_SCORE_DECAY"):
        assert key in out


def test_migrate_seed_tenants(tmp_path):
    s = Server(tmp_path)
    assert "up to date" in s.cli("migrate").stdout
    assert "up to date" in s.cli("migrate").stdout  # idempotent
    assert "default" in s.cli("seed").stdout
    assert "default" in s.cli("seed").stdout  # idempotent
    out = s.cli("tenant", "add", "beta", "Beta Labs").stdout
    assert "beta" in out
    again = s.cli("tenant", "add", "beta", check=False)
    assert again.returncode == 1 and "exists" in again.stderr
    bad = s.cli("tenant", "add", "Not A Slug", check=False)
    assert bad.returncode == 2
    listing = s.cli("tenant", "list").stdout
    assert "default" in listing and "Beta Labs" in listing


def test_bad_configuration_is_refused(tmp_path):
    s = Server(tmp_path)
    out = s.cli("migrate", check=False, env={"LEADFLOW_WORKERS": "many"})
    assert out.returncode == 1 and "LEADFLOW_WORKERS" in out.stderr
    out = s.cli("migrate", check=False, env={"LEADFLOW_SYNC": "sometimes"})
    assert out.returncode == 1 and "LEADFLOW_SYNC" in out.stderr
    out = s.cli("migrate", check=False, env={"LEADFLOW_DB": "postgres://x/y"})
    assert out.returncode == 1 and "PostgreSQL" in out.stderr


def test_replay_command(fresh_server):
    s = fresh_server.start()
    eid = s.ingest({"event_type": "cli_replay"}).json()["event_id"]
    before = s.wait_processed(eid)["processed_at"]
    out = s.cli("replay", "--tenant", "default", "--type", "cli_replay")
    assert "1 events set back to pending" in out.stdout
    deadline = time.time() + 10  # the server picks it up within its idle poll
    while time.time() < deadline:
        ev = s.get(f"/api/v1/events/{eid}").json()
        if ev["status"] == "processed" and ev["processed_at"] != before:
            break
        time.sleep(0.05)
    assert ev["processed_at"] != before
    assert s.cli("replay", "--tenant", "default", check=False).returncode == 2  # no filter
