"""Leads: identity resolution and merge, attribution, organizations, the leads API."""
import concurrent.futures as cf
import sqlite3
import time
import uuid

import requests

from conftest import fields_of, problem


def uniq(prefix="p"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def send(server, event_type="page_view", **lead):
    r = server.ingest({"event_type": event_type, "lead": lead})
    assert r.status_code == 202, r.text
    return server.wait_processed(r.json()["event_id"])


def lead_of(server, ev):
    lid = ev["lead_id"]
    assert lid, ev
    r = server.get(f"/api/v1/leads/{lid}")
    assert r.status_code == 200, r.text
    return r.json()


def test_event_creates_lead_with_identities(server):
    email = f"{uniq('ada')}@lab.example"
    ev = send(server, "download", email=email.upper(), portal_id="p-1" + uniq(),
              first_name="Ada", job_title="Head of R&D", company="Lab GmbH", country="DE")
    assert ev["result"]["lead"]["created"] is True and ev["result"]["outcome"] == "processed"
    lead = lead_of(server, ev)
    assert lead["email"] == email.lower() and lead["first_name"] == "Ada"
    assert lead["job_title"] == "Head of R&D" and lead["country"] == "DE"
    kinds = {i["kind"]: i["value"] for i in lead["identities"]}
    assert kinds["email"] == email.lower() and "portal_id" in kinds
    assert lead["organization"]["name"] == "Lab GmbH" and lead["organization"]["domain"] == "lab.example"
    assert lead["status"] == "new"
    assert lead["score"]["total"] > 0  # the default rules score a head of R&D in DE
    assert lead["score"]["tier"] == ("warm" if lead["score"]["total"] >= 20 else "cold")
    # lead.created was emitted as a domain event about the lead
    tl = server.get(f"/api/v1/leads/{lead['id']}/timeline").json()["items"]
    assert any(i["kind"] == "domain_event" and i["event_type"] == "lead.created" for i in tl)


def test_second_event_attaches_new_identity_without_overwriting(server):
    email = f"{uniq('bob')}@corp.example"
    first = send(server, email=email, first_name="Bob")
    second = send(server, email=email, linkedin_url="https://www.LinkedIn.com/in/Bob-X/?trk=1",
                  first_name="Robert", last_name="Builder")
    assert first["lead_id"] == second["lead_id"]
    assert second["result"]["lead"]["created"] is False
    lead = lead_of(server, second)
    assert lead["first_name"] == "Bob"  # set values are kept
    assert lead["last_name"] == "Builder"  # empty ones are filled
    kinds = {i["kind"]: i["value"] for i in lead["identities"]}
    assert kinds["linkedin_url"] == "linkedin.com/in/bob-x"
    # a third event known only by the LinkedIn URL finds the same lead
    third = send(server, linkedin_url="http://linkedin.com/in/bob-x/")
    assert third["lead_id"] == lead["id"]


def test_identities_of_two_leads_merge_into_the_older(server):
    e1, p2 = f"{uniq('m1')}@merge.example", uniq("portal")
    older = send(server, "download", email=e1, first_name="Mia", utm=None)
    younger = send(server, "webinar_attended", portal_id=p2, job_title="CTO", phone="+49 30 1234567")
    assert older["lead_id"] != younger["lead_id"]
    both = send(server, "page_view", email=e1, portal_id=p2)
    assert both["lead_id"] == older["lead_id"]
    assert both["result"]["lead"]["merged"] == [younger["lead_id"]]
    survivor = lead_of(server, both)
    assert survivor["first_name"] == "Mia" and survivor["job_title"] == "CTO"
    assert survivor["phone"] == "+49 30 1234567"
    kinds = {i["kind"] for i in survivor["identities"]}
    assert {"email", "portal_id", "phone"} <= kinds
    # the merged lead's id answers the survivor
    via_old = server.get(f"/api/v1/leads/{younger['lead_id']}").json()
    assert via_old["id"] == survivor["id"] and via_old["requested_id"] == younger["lead_id"]
    # its events moved: the timeline holds all three events and the merge
    tl = server.get(f"/api/v1/leads/{survivor['id']}/timeline").json()["items"]
    types = [i["event_type"] for i in tl if i["kind"] == "event"]
    assert sorted(types) == ["download", "page_view", "webinar_attended"]
    assert any(i.get("event_type") == "lead.merged" for i in tl)
    # the merged lead is not listed
    listed = server.get(f"/api/v1/leads?q={e1.split('@')[0]}").json()["items"]
    assert [l["id"] for l in listed] == [survivor["id"]]


def test_concurrent_first_events_make_one_lead(server):
    email = f"{uniq('race')}@conc.example"

    def go(i):
        with requests.Session() as s:
            return s.post(server.url + "/api/v1/events",
                          json={"event_type": "page_view", "lead": {"email": email, "portal_id": f"r{i}"}},
                          headers=server.auth("ingest")).json()["event_id"]

    with cf.ThreadPoolExecutor(10) as pool:
        ids = list(pool.map(go, range(10)))
    leads = {server.wait_processed(i)["lead_id"] for i in ids}
    assert len(leads) == 1
    lead = server.get(f"/api/v1/leads/{leads.pop()}").json()
    assert sum(1 for i in lead["identities"] if i["kind"] == "portal_id") == 10


def test_concurrent_first_events_two_processes_make_one_lead(fresh_server):
    """Two serve processes on one database file, each with workers: still one lead."""
    import copy
    from conftest import Server
    a = fresh_server.start()
    b = Server(a.dir)
    b.env = copy.deepcopy(a.env)
    b.log_path = a.log_path + ".b"
    b.start()
    try:
        email = f"{uniq('two')}@procs.example"
        ids = []
        for i in range(20):
            srv = a if i % 2 else b
            ids.append(srv.ingest({"event_type": "x", "lead": {"email": email, "external_id": f"e{i}"}})
                       .json()["event_id"])
        leads = {a.wait_processed(i)["lead_id"] for i in ids}
        assert len(leads) == 1
    finally:
        assert b.stop() == 0


def test_out_of_order_events_keep_touches_right(server):
    email = f"{uniq('t')}@touch.example"

    def at(event_type, when, source, campaign):
        r = server.ingest({"event_type": event_type, "occurred_at": when, "lead": {"email": email},
                           "utm": {"source": source, "campaign": campaign}})
        return server.wait_processed(r.json()["event_id"])

    ev = at("page_view", "2026-11-10T10:00:00Z", "google", "search")
    at("page_view", "2026-11-12T10:00:00Z", "linkedin", "q4")
    at("page_view", "2026-11-11T10:00:00Z", "newsletter", "nov")   # late, in between
    at("page_view", "2026-11-01T10:00:00Z", "event", "fair")        # late, older than all
    lead = lead_of(server, ev)
    assert lead["first_touch"] == {"source": "event", "campaign": "fair", "at": "2026-11-01T10:00:00.000Z"}
    assert lead["last_touch"] == {"source": "linkedin", "campaign": "q4", "at": "2026-11-12T10:00:00.000Z"}
    assert lead["last_activity_at"] == "2026-11-12T10:00:00.000Z"
    # without utm the event's own source is the touch
    r = server.ingest({"event_type": "x", "occurred_at": "2026-11-13T10:00:00Z", "lead": {"email": email}})
    server.wait_processed(r.json()["event_id"])
    assert lead_of(server, ev)["last_touch"]["source"] == "ingest"


def test_organizations_by_domain_name_and_freemail(server):
    d = uniq("acme") + ".example"
    a = lead_of(server, send(server, email=f"x@{d}"))
    b = lead_of(server, send(server, email=f"y@{d}", company="ACME Corp"))
    assert a["organization"]["id"] == b["organization"]["id"]
    name = uniq("Free Co")
    c = lead_of(server, send(server, email=f"{uniq('f')}@gmail.com", company=name))
    d2 = lead_of(server, send(server, email=f"{uniq('g')}@gmail.com", company=name.upper()))
    assert c["organization"]["id"] == d2["organization"]["id"]
    assert c["organization"]["domain"] is None  # free-mail domains never name a company
    e = lead_of(server, send(server, email=f"{uniq('h')}@gmail.com"))
    assert e["organization"] is None


def test_no_identity_and_bad_identity(server):
    ev = send(server, first_name="Nobody")
    assert ev["lead_id"] is None and ev["result"]["outcome"] == "no_identity"
    ev = send(server, email="not-an-email")
    assert ev["result"]["outcome"] == "no_identity"


def test_suppressed_email_is_dropped(server):
    email = f"{uniq('gone')}@erased.example"
    server.add_erasure(email)
    ev = send(server, email=email.upper(), first_name="Ghost")
    assert ev["result"]["outcome"] == "suppressed" and ev["lead_id"] is None
    assert server.get(f"/api/v1/leads?q={email}").json()["items"] == []
    problem(server.post("/api/v1/leads", {"email": email}), 409)


def _set_scores(server, scores):
    db = sqlite3.connect(server.db, timeout=10)
    for lid, score, activity in scores:
        db.execute("UPDATE leads SET total_score = ?, last_activity_at = ? WHERE id = ?",
                   (score, activity, lid))
    db.commit()
    db.close()


def test_list_filters_sorts_and_cursors(server):
    tag = uniq("list")
    ids = []
    for i in range(6):
        lead = server.post("/api/v1/leads", {"email": f"{tag}-{i}@filters.example",
                                             "first_name": f"N{i}", "last_name": tag,
                                             "status": "qualified" if i % 2 else "new"}).json()
        ids.append(lead["id"])
    _set_scores(server, [(lid, s, a) for lid, s, a in
                         zip(ids, [5, 25, 45, 85, 25, 60], [10, 60, 20, 50, 40, 30])])
    q = f"q={tag}"
    got = [l["id"] for l in server.get(f"/api/v1/leads?{q}&sort=-total_score").json()["items"]]
    assert got == [ids[3], ids[5], ids[2], ids[1], ids[4], ids[0]] or \
        got == [ids[3], ids[5], ids[2], ids[4], ids[1], ids[0]]
    # ties are broken by id, and cursors walk the same order without repeats
    walked, cursor = [], None
    while True:
        page = server.get(f"/api/v1/leads?{q}&sort=-total_score&limit=2"
                          + (f"&cursor={cursor}" if cursor else "")).json()
        walked += [l["id"] for l in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert walked == got
    asc = [l["id"] for l in server.get(f"/api/v1/leads?{q}&sort=last_activity_at").json()["items"]]
    assert asc == [ids[0], ids[2], ids[5], ids[4], ids[3], ids[1]]
    created = [l["id"] for l in server.get(f"/api/v1/leads?{q}&sort=created_at&limit=4").json()["items"]]
    assert created == ids[:4]
    assert {l["id"] for l in server.get(f"/api/v1/leads?{q}&status=qualified").json()["items"]} == \
        {ids[1], ids[3], ids[5]}
    assert {l["id"] for l in server.get(f"/api/v1/leads?{q}&score_gte=25&score_lte=45").json()["items"]} == \
        {ids[1], ids[2], ids[4]}
    assert {l["id"] for l in server.get(f"/api/v1/leads?{q}&tier=hot").json()["items"]} == {ids[3]}
    assert {l["id"] for l in server.get(f"/api/v1/leads?{q}&tier=mql").json()["items"]} == {ids[2], ids[5]}
    assert {l["id"] for l in server.get(f"/api/v1/leads?{q}&tier=warm").json()["items"]} == {ids[1], ids[4]}
    assert server.get(f"/api/v1/leads?{q}&routing_status=routed").json()["items"] == []
    assert len(server.get(f"/api/v1/leads?{q}&created_since=2020-01-01T00:00:00Z").json()["items"]) == 6
    assert server.get(f"/api/v1/leads?{q}&created_since=2099-01-01T00:00:00Z").json()["items"] == []
    assert server.get(f"/api/v1/leads?q=N3%20{tag}").json()["items"][0]["id"] == ids[3]  # full name
    for bad in ("sort=name", "tier=lukewarm", "status=maybe", "score_gte=x", "cursor=zzz",
                "created_since=today", "limit=0"):
        problem(server.get(f"/api/v1/leads?{bad}"), 400)


def test_list_by_organization_and_search_by_company(server):
    company = uniq("Searchable Labs")
    lead = lead_of(server, send(server, email=f"{uniq('s')}@{uniq('sl')}.example", company=company))
    org = lead["organization"]["id"]
    assert [l["id"] for l in server.get(f"/api/v1/leads?organization_id={org}").json()["items"]] == [lead["id"]]
    found = server.get("/api/v1/leads", params={"q": company.split("-")[1][:6]}).json()["items"]
    assert lead["id"] in [l["id"] for l in found]


def test_timeline_newest_first_with_cursor(server):
    email = f"{uniq('tl')}@time.example"
    for day in (3, 1, 2):
        r = server.ingest({"event_type": f"day{day}", "occurred_at": f"2026-10-0{day}T00:00:00Z",
                           "lead": {"email": email}})
        lid = server.wait_processed(r.json()["event_id"])["lead_id"]
    items, cursor = [], None
    while True:
        page = server.get(f"/api/v1/leads/{lid}/timeline?limit=2" + (f"&cursor={cursor}" if cursor else "")).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    events = [i["event_type"] for i in items if i["kind"] == "event"]
    assert events == ["day3", "day2", "day1"]
    ats = [i["at"] for i in items]
    assert ats == sorted(ats, reverse=True)


def test_create_patch_delete(server):
    email = f"{uniq('c')}@create.example"
    r = server.post("/api/v1/leads", {"email": email, "first_name": "Cleo", "company": "Create AG",
                                      "lifecycle_stage": "subscriber", "portal_id": uniq()})
    assert r.status_code == 201, r.text
    lead = r.json()
    assert lead["lifecycle_stage"] == "subscriber" and lead["organization"]["name"] == "Create AG"
    doc = problem(server.post("/api/v1/leads", {"email": email.upper()}), 409)
    assert doc["lead_id"] == lead["id"]
    doc = problem(server.post("/api/v1/leads", {"first_name": "No identity"}), 400)
    doc = problem(server.post("/api/v1/leads", {"email": "bad", "status": "sleepy"}), 400)
    assert {"email", "status"} <= fields_of(doc)
    lid = lead["id"]
    r = server.patch(f"/api/v1/leads/{lid}", {"first_name": "Cleopatra", "status": "contacted",
                                               "job_title": None})
    assert r.status_code == 200 and r.json()["first_name"] == "Cleopatra"
    assert r.json()["status"] == "contacted" and r.json()["job_title"] is None
    doc = problem(server.patch(f"/api/v1/leads/{lid}", {"total_score": 99, "id": "x"}), 400)
    assert {"total_score", "id"} <= fields_of(doc)
    new_email = f"{uniq('c2')}@create.example"
    r = server.patch(f"/api/v1/leads/{lid}", {"email": new_email})
    assert r.json()["email"] == new_email
    assert [i["value"] for i in r.json()["identities"] if i["kind"] == "email"] == [new_email]
    other = server.post("/api/v1/leads", {"email": f"{uniq('o')}@create.example"}).json()
    problem(server.patch(f"/api/v1/leads/{other['id']}", {"email": new_email}), 409)
    problem(server.delete(f"/api/v1/leads/{lid}", role="sales"), 403)
    assert server.delete(f"/api/v1/leads/{lid}", role="manager").status_code == 204
    problem(server.get(f"/api/v1/leads/{lid}"), 404)
    # its identities are free again
    assert server.post("/api/v1/leads", {"email": new_email}).status_code == 201
    problem(server.get(f"/api/v1/leads/{uuid.uuid4()}"), 404)
    problem(server.post("/api/v1/leads", {"email": "v@x.example"}, role="viewer"), 403)


def test_merge_endpoint(server):
    a = server.post("/api/v1/leads", {"email": f"{uniq('ma')}@m.example", "first_name": "A"}).json()
    b = server.post("/api/v1/leads", {"email": f"{uniq('mb')}@m.example", "job_title": "Boss"}).json()
    r = server.post(f"/api/v1/leads/{a['id']}/merge", {"other_id": b["id"]})
    assert r.status_code == 200
    merged = r.json()
    assert merged["id"] == a["id"] and merged["job_title"] == "Boss"
    assert len([i for i in merged["identities"] if i["kind"] == "email"]) == 2
    problem(server.post(f"/api/v1/leads/{a['id']}/merge", {"other_id": b["id"]}), 400)
    problem(server.post(f"/api/v1/leads/{a['id']}/merge", {"other_id": str(uuid.uuid4())}), 404)
    problem(server.post(f"/api/v1/leads/{a['id']}/merge", {"other_id": "nope"}), 400)


def test_another_tenant_sees_no_leads(server):
    server.cli("tenant", "add", "leadco", check=False)
    lead = lead_of(server, send(server, email=f"{uniq('iso')}@iso.example", company="Iso"))
    problem(server.get(f"/api/v1/leads/{lead['id']}", tenant="leadco"), 404)
    problem(server.get(f"/api/v1/leads/{lead['id']}/timeline", tenant="leadco"), 404)
    problem(server.patch(f"/api/v1/leads/{lead['id']}", {"first_name": "x"}, tenant="leadco"), 404)
    problem(server.get(f"/api/v1/organizations/{lead['organization']['id']}", tenant="leadco"), 404)
    assert server.get("/api/v1/leads", tenant="leadco").json()["items"] == []
    assert server.get("/api/v1/organizations", tenant="leadco").json()["items"] == []
    # the same email in the other tenant is a different lead
    r = server.ingest({"event_type": "x", "lead": {"email": lead["email"]}}, tenant="leadco")
    ev = server.get(f"/api/v1/events/{r.json()['event_id']}", tenant="leadco").json()
    for _ in range(100):
        ev = server.get(f"/api/v1/events/{r.json()['event_id']}", tenant="leadco").json()
        if ev["status"] == "processed":
            break
        time.sleep(0.05)
    assert ev["lead_id"] and ev["lead_id"] != lead["id"]


def test_organizations_api(server):
    dom = uniq("org") + ".example"
    r = server.post("/api/v1/organizations", {"name": "Org One", "domain": dom.upper(), "country": "AT"})
    assert r.status_code == 201, r.text
    org = r.json()
    assert org["domain"] == dom and org["country"] == "AT"
    problem(server.post("/api/v1/organizations", {"name": "Dup", "domain": dom}), 409)
    problem(server.post("/api/v1/organizations", {"domain": "x.example"}), 400)
    doc = problem(server.post("/api/v1/organizations", {"name": "X", "owner": "me", "domain": "nodot"}), 400)
    assert {"owner", "domain"} <= fields_of(doc)
    lead = lead_of(server, send(server, email=f"someone@{dom}"))
    assert lead["organization"]["id"] == org["id"]  # found by domain
    got = server.get(f"/api/v1/organizations/{org['id']}").json()
    assert got["lead_count"] == 1 and got["leads"][0]["id"] == lead["id"]
    r = server.patch(f"/api/v1/organizations/{org['id']}", {"industry": "Biotech", "name": "Org 1"})
    assert r.json()["industry"] == "Biotech" and r.json()["name"] == "Org 1"
    assert [o["id"] for o in server.get(f"/api/v1/organizations?domain={dom}").json()["items"]] == [org["id"]]
    assert org["id"] in [o["id"] for o in server.get("/api/v1/organizations?q=org%201").json()["items"]]
    problem(server.delete(f"/api/v1/organizations/{org['id']}", role="sales"), 403)
    assert server.delete(f"/api/v1/organizations/{org['id']}").status_code == 204
    assert server.get(f"/api/v1/leads/{lead['id']}").json()["organization"] is None
    problem(server.get(f"/api/v1/organizations/{org['id']}"), 404)
