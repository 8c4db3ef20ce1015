"""Regression tests for bugs found in review of the leads work; each is named after what broke."""
import uuid

import requests

from conftest import problem


def uniq(p="x"):
    return f"{p}-{uuid.uuid4().hex[:10]}"


def test_org_create_with_taken_domain_stores_nothing(server):
    dom = uniq("taken") + ".example"
    assert server.post("/api/v1/organizations", {"name": "A", "domain": dom}).status_code == 201
    name = uniq("Half Written")
    problem(server.post("/api/v1/organizations", {"name": name, "domain": dom}), 409)
    assert server.get("/api/v1/organizations", params={"q": name}).json()["items"] == []


def test_patch_email_to_an_erased_email_is_refused(server):
    gone = f"{uniq('erased')}@gone.example"
    server.add_erasure(gone)
    lead = server.post("/api/v1/leads", {"email": f"{uniq('p')}@keep.example"}).json()
    problem(server.patch(f"/api/v1/leads/{lead['id']}", {"email": gone}), 409)
    assert server.get(f"/api/v1/leads/{lead['id']}").json()["email"] != gone


def test_patch_email_to_a_secondary_email_makes_it_main(server):
    a, b = f"{uniq('a')}@two.example", f"{uniq('b')}@two.example"
    one = server.post("/api/v1/leads", {"email": a}).json()
    two = server.post("/api/v1/leads", {"email": b}).json()
    server.post(f"/api/v1/leads/{one['id']}/merge", {"other_id": two["id"]})
    r = server.patch(f"/api/v1/leads/{one['id']}", {"email": b})
    assert r.status_code == 200 and r.json()["email"] == b


def test_delete_through_a_merged_id_does_not_delete_the_survivor(server):
    one = server.post("/api/v1/leads", {"email": f"{uniq('s')}@del.example"}).json()
    two = server.post("/api/v1/leads", {"email": f"{uniq('l')}@del.example"}).json()
    server.post(f"/api/v1/leads/{one['id']}/merge", {"other_id": two["id"]})
    doc = problem(server.delete(f"/api/v1/leads/{two['id']}"), 409)
    assert one["id"] in doc["detail"]
    assert server.get(f"/api/v1/leads/{one['id']}").status_code == 200


def test_one_event_merging_three_leads_emits_two_lead_merged(server):
    e, p, x = f"{uniq('e')}@three.example", uniq("portal"), uniq("ext")
    ids = [server.ingest({"event_type": "a", "lead": lead}).json()["event_id"]
           for lead in ({"email": e}, {"portal_id": p}, {"external_id": x})]
    leads = [server.wait_processed(i)["lead_id"] for i in ids]
    ev = server.wait_processed(server.ingest({"event_type": "b", "lead": {
        "email": e, "portal_id": p, "external_id": x}}).json()["event_id"])
    assert ev["lead_id"] == leads[0] and sorted(ev["result"]["lead"]["merged"]) == sorted(leads[1:])
    tl = server.get(f"/api/v1/leads/{leads[0]}/timeline").json()["items"]
    merged = [i for i in tl if i.get("event_type") == "lead.merged"]
    assert sorted(m["metadata"]["merged_id"] for m in merged) == sorted(leads[1:])


def test_api_merges_with_a_repeated_request_id_both_emit(server):
    base = server.post("/api/v1/leads", {"email": f"{uniq('b')}@rid.example"}).json()
    for _ in range(2):
        other = server.post("/api/v1/leads", {"email": f"{uniq('o')}@rid.example"}).json()
        r = server.http.post(f"{server.url}/api/v1/leads/{base['id']}/merge",
                             json={"other_id": other["id"]},
                             headers={**server.auth(), "X-Request-Id": "same-id"})
        assert r.status_code == 200
    tl = server.get(f"/api/v1/leads/{base['id']}/timeline").json()["items"]
    assert len([i for i in tl if i.get("event_type") == "lead.merged"]) == 2


def test_merge_api_keeps_the_older_lead_like_the_stage(server):
    older = server.post("/api/v1/leads", {"email": f"{uniq('old')}@age.example"}).json()
    younger = server.post("/api/v1/leads", {"email": f"{uniq('young')}@age.example"}).json()
    r = server.post(f"/api/v1/leads/{younger['id']}/merge", {"other_id": older["id"]})
    assert r.status_code == 200 and r.json()["id"] == older["id"]


def test_org_search_escapes_wildcards(server):
    server.post("/api/v1/organizations", {"name": uniq("Plain")})
    assert server.get("/api/v1/organizations", params={"q": "%"}).json()["items"] == []
    assert server.get("/api/v1/organizations", params={"q": "_"}).json()["items"] == []


def test_json_import_refuses_duplicate_keys(server):
    r = requests.post(server.url + "/api/v1/leads/bulk",
                      data=b'[{"email": "a@dup.example", "email": "b@dup.example"}]',
                      headers={**server.auth(), "Content-Type": "application/json"})
    problem(r, 400)


def test_json_import_takes_integer_ids_and_ignores_unknown_columns(server):
    pid = int(uuid.uuid4().int % 10**9)
    r = server.post("/api/v1/leads/bulk", [{"portal_id": pid, "notes": "n" * 300}])
    body = r.json()
    assert body["created"] == 1 and body["failed"] == 0, body
    assert body["unknown_columns"] == ["notes"]


def test_csv_row_numbers_count_empty_records(server):
    csv = f"email,first_name\n,\n{uniq('r')}@rows.example,Ok\nbad-email,Bad\n"
    r = requests.post(server.url + "/api/v1/leads/bulk", data=csv.encode(),
                      headers={**server.auth(), "Content-Type": "text/csv"})
    body = r.json()
    assert body["created"] == 1 and body["failed"] == 1
    assert body["errors"][0]["row"] == 3  # the third record after the header


def test_cli_import_takes_tenant_before_the_file(fresh_server, tmp_path):
    s = fresh_server
    s.cli("seed")
    f = tmp_path / "t.csv"
    f.write_text(f"email\n{uniq('cli')}@order.example\n")
    out = s.cli("import", "--tenant", "default", str(f), check=False)
    assert out.returncode == 0 and "1 created" in out.stdout
