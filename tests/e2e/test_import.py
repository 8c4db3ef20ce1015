"""Bulk import of leads: CSV and JSON over HTTP, and `leadflow import`."""
import time
import uuid

import requests

from conftest import problem


def post_csv(server, text, role="admin"):
    return requests.post(server.url + "/api/v1/leads/bulk", data=text.encode("utf-8"),
                         headers={**server.auth(role), "Content-Type": "text/csv"}, timeout=300)


def test_csv_with_good_and_bad_rows(server):
    tag = uuid.uuid4().hex[:8]
    known = server.post("/api/v1/leads", {"email": f"known-{tag}@imp.example", "first_name": "Old"}).json()
    csv = (
        "Email, First_Name,last_name,company,job_title,linkedin_url,portal_id,favourite_colour\n"
        f"new1-{tag}@imp.example,Nina,New,Imp Labs,CSO,,,blue\n"
        f"known-{tag}@imp.example,Karl,Known,,,,,\n"
        "not-an-email,Bad,Row,,,,,\n"
        ",,Nobody,,,,,\n"
        f"new2-{tag}@imp.example,\"Quoted, Name\",\"Multi\nLine\",Imp Labs,,https://linkedin.com/in/{tag},p-{tag},\n"
    )
    r = post_csv(server, csv)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rows"] == 5 and body["created"] == 2 and body["updated"] == 1 and body["failed"] == 2
    assert body["unknown_columns"] == ["favourite_colour"]
    errors = {e["row"]: e for e in body["errors"]}
    assert errors[3]["field"] == "email" and "plausible" in errors[3]["reason"]
    assert "no identity" in errors[4]["reason"]
    k = server.get(f"/api/v1/leads/{known['id']}").json()
    assert k["first_name"] == "Karl" and k["last_name"] == "Known"  # an import replaces values
    n2 = server.get("/api/v1/leads", params={"q": f"new2-{tag}"}).json()["items"][0]
    assert n2["first_name"] == "Quoted, Name" and n2["last_name"] == "Multi\nLine"
    n2 = server.get(f"/api/v1/leads/{n2['id']}").json()
    assert {i["kind"] for i in n2["identities"]} == {"email", "linkedin_url", "portal_id"}
    n1 = server.get("/api/v1/leads", params={"q": f"new1-{tag}"}).json()["items"][0]
    assert n1["organization_id"] == n2["organization_id"]  # one organization by domain
    # importing the same file again creates nothing
    again = post_csv(server, csv).json()
    assert again["created"] == 0 and again["updated"] == 3 and again["failed"] == 2


def test_row_with_identities_of_two_leads_fails_alone(server):
    tag = uuid.uuid4().hex[:8]
    a = server.post("/api/v1/leads", {"email": f"a-{tag}@two.example"}).json()
    b = server.post("/api/v1/leads", {"portal_id": f"pb-{tag}"}).json()
    csv = f"email,portal_id,first_name\na-{tag}@two.example,pb-{tag},Both\nok-{tag}@two.example,,Fine\n"
    body = post_csv(server, csv).json()
    assert body["failed"] == 1 and body["created"] == 1
    assert "two leads" in body["errors"][0]["reason"]
    # nothing of the failed row was written
    assert server.get(f"/api/v1/leads/{a['id']}").json()["first_name"] is None
    assert server.get(f"/api/v1/leads/{b['id']}").json()["first_name"] is None


def test_malformed_csv_is_400_with_the_line(server):
    doc = problem(post_csv(server, 'email,first_name\na@x.example,"unclosed\nb@x.example,x\n'), 400)
    assert "line" in doc["detail"]
    doc = problem(post_csv(server, 'email,first_name\na@x.example,bad"quote\n'), 400)
    assert "line 2" in doc["detail"]
    r = requests.post(server.url + "/api/v1/leads/bulk", data=b"email\nlatin1-\xe9@x.example\n",
                      headers={**server.auth(), "Content-Type": "text/csv"})
    doc = problem(r, 400)
    assert "UTF-8" in doc["detail"] and "line 2" in doc["detail"]
    problem(post_csv(server, ""), 400)
    problem(post_csv(server, "email,email\na@x.example,b@x.example\n"), 400)
    r = requests.post(server.url + "/api/v1/leads/bulk", data=b"x",
                      headers={**server.auth(), "Content-Type": "application/xml"})
    problem(r, 415)
    problem(post_csv(server, "email\na@x.example\n", role="viewer"), 403)


def test_json_array_import(server):
    tag = uuid.uuid4().hex[:8]
    rows = [{"email": f"j1-{tag}@json.example", "first_name": "Jo", "shoe_size": "44"},
            {"phone": "0049 30 555 0101", "company": f"Phone Co {tag}"},
            {"email": 42}]
    r = server.post("/api/v1/leads/bulk", rows)
    body = r.json()
    assert r.status_code == 200 and body["created"] == 2 and body["failed"] == 1
    assert body["unknown_columns"] == ["shoe_size"]
    assert body["errors"][0]["row"] == 3
    problem(server.post("/api/v1/leads/bulk", {"email": "not a list"}), 400)


def test_fifty_thousand_rows(server):
    tag = uuid.uuid4().hex[:8]
    lines = ["email,first_name,company"]
    lines += [f"bulk{i}-{tag}@co{i % 500}.example,Name{i},Co {i % 500}" for i in range(50000)]
    start = time.time()
    r = post_csv(server, "\n".join(lines) + "\n")
    elapsed = time.time() - start
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    assert body["created"] == 50000 and body["failed"] == 0, body["errors"][:3]
    print(f"50,000-row import took {elapsed:.1f} s")
    over = lines + [f"extra-{tag}@x.example,E,Co"]
    problem(post_csv(server, "\n".join(over) + "\n"), 400)


def test_cli_import(fresh_server, tmp_path):
    s = fresh_server
    tag = uuid.uuid4().hex[:8]
    f = tmp_path / "leads.csv"
    f.write_text(f"email,first_name,notes\ncli-{tag}@cli.example,Cli,hello\nbroken,x,y\n")
    out = s.cli("import", str(f), check=False)
    assert out.returncode == 1 and "no tenant 'default'" in out.stderr  # an empty database
    s.cli("seed")
    out = s.cli("import", str(f), check=False)
    assert out.returncode == 1  # one row failed
    assert "2 rows: 1 created, 0 updated, 1 failed" in out.stdout
    assert "row 2: email" in out.stdout and "notes" in out.stderr
    assert "imported 2/2 rows" in out.stderr
    s.start()
    found = s.get("/api/v1/leads", params={"q": f"cli-{tag}"}).json()["items"]
    assert len(found) == 1 and found[0]["first_name"] == "Cli"
    bad = tmp_path / "bad.csv"
    bad.write_text('email\n"unterminated\n')
    out = s.cli("import", str(bad), check=False)
    assert out.returncode == 1 and "malformed CSV" in out.stderr
