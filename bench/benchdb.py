#!/usr/bin/env python3
"""Database helpers for bench/run.sh, on a leadflow SQLite file (the server stopped).

  benchdb.py decay-populate DB [--rows N] [--leads N] [--seed N]
      Fills the tenant 'default' of a migrated and seeded database with leads and score rows
      for the score decay scenario (f), in one transaction.
  benchdb.py decay-check DB
      After the decay job: no unexpired row is past its expiry, and every lead's category
      scores and total equal the sums of its unexpired rows. Exit status 1 when not.
  benchdb.py drain-counts DB [--since-ms T]
      What the lead drain (e) wrote: score and intent rows, leads scored, internal events.
  benchdb.py plans DB
      EXPLAIN QUERY PLAN of the decay job's and the score stage's statements.
  benchdb.py wait-drained DB [--timeout S] [--interval S]
      While a server works on DB: polls, read-only, until no event of the tenant 'default' is
      pending or processing. One count over the covering index events_status, about 10 ms
      per poll at 100,000 pending; GET /api/v1/events/status/pending costs the server about
      15 times that (a GROUP BY over event_type and a scan of the tenant for failed events),
      CPU that the workers miss on two cores. Prints "left N" and "polls N"; exit status 1
      when the timeout passed first.

Every line printed is "key value" or free text; run.sh picks the keys it needs.
"""
import argparse
import os
import random
import sqlite3
import sys
import time

DAY_MS = 86400 * 1000


def uuid7(ms, rnd):
    """A UUIDv7-shaped text id for time ms (the server's ids look the same: 36 characters,
    time-ordered)."""
    r = rnd.getrandbits(74)
    hi = f"{ms & 0xFFFFFFFFFFFF:012x}"
    a = (r >> 62) & 0xFFF
    b = (r >> 48) & 0x3FFF | 0x8000
    c = r & 0xFFFFFFFFFFFF
    return f"{hi[:8]}-{hi[8:]}-7{a:03x}-{b:04x}-{c:012x}"


def tenant_id(db, slug="default"):
    row = db.execute("SELECT id FROM tenants WHERE slug = ?", (slug,)).fetchone()
    if row is None:
        sys.exit(f"benchdb: no tenant '{slug}' (run `leadflow seed` first)")
    return row[0]


def decay_populate(args):
    """leads: created 200 days ago. Per lead: the two demographic rows a profile would have
    earned (no expiry), then rows of the expiring rules. About 90% of those expired before
    now (expires_at in the past, expired_at NULL: the job has to find them), the rest expire
    at least a day from now. Rows are inserted in time order with time-ordered ids, so, as in
    a real database, a lead's rows are spread over the whole table. Leads' scores are the sums
    of their rows (all unexpired as far as the database knows), with lifecycle and hot state
    to match the default thresholds (mql at 40, hot at 80) and score_expires_at the earliest
    expires_at of their rows (in the past for almost every lead)."""
    rnd = random.Random(args.seed)
    now = int(time.time() * 1000)
    db = sqlite3.connect(args.db, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")
    tenant = tenant_id(db)
    rules = {}
    for rid, slug, cat, pts, exp in db.execute(
            "SELECT id, slug, category, points, expires_after_days FROM scoring_rules"
            " WHERE tenant_id = ?", (tenant,)):
        rules[slug] = (rid, cat, pts, exp)
    demographic = [rules[s] for s in ("title-decision-maker", "country-dach")]
    # the expiring rules, weighted roughly as a lead's activity would earn them
    weighted = [("page-view", 30), ("email-opened", 20), ("pricing-page", 8),
                ("email-clicked", 10), ("whitepaper-download", 8), ("protocol-download", 8),
                ("webinar-registered", 5), ("webinar-attended", 3), ("email-replied", 3),
                ("linkedin-replied", 5)]
    pool = [rules[s] for s, w in weighted for _ in range(w)]
    for s, _ in weighted:
        assert rules[s][3], f"rule {s} has no expiry"

    n_leads, n_rows = args.leads, args.rows
    # rows per lead: two demographic rows each, the rest spread at random (about 50 a lead)
    per_lead = [2] * n_leads
    for _ in range(n_rows - 2 * n_leads):
        per_lead[rnd.randrange(n_leads)] += 1

    created = now - 200 * DAY_MS
    lead_ids = [uuid7(created + k, rnd) for k in range(n_leads)]
    rows = []  # (occurred_at, lead index, rule, expires_at)
    past = future = 0
    for k, n in enumerate(per_lead):
        for r in demographic:
            rows.append((created + rnd.randrange(DAY_MS), k, r, None))
        for _ in range(n - 2):
            r = pool[rnd.randrange(len(pool))]
            life = r[3] * DAY_MS
            if rnd.random() < 0.9:  # expired before now: up to 60 days ago
                expires = now - rnd.randrange(60_000, 60 * DAY_MS)
                past += 1
            else:  # expires between one day from now and the end of its life
                expires = now + DAY_MS + rnd.randrange(life - DAY_MS)
                future += 1
            rows.append((expires - life, k, r, expires))
    rows.sort(key=lambda x: x[0])

    sums = [[0, 0, 0] for _ in range(n_leads)]
    last = [0] * n_leads
    first_expiry = [None] * n_leads  # leads.score_expires_at: the earliest expires_at
    cat_ix = {"demographic": 0, "engagement": 1, "behavior": 2}

    def gen():
        for occ, k, (rid, cat, pts, _), expires in rows:
            sums[k][cat_ix[cat]] += pts
            last[k] = max(last[k], occ)
            if expires is not None and (first_expiry[k] is None or expires < first_expiry[k]):
                first_expiry[k] = expires
            yield (uuid7(occ, rnd), tenant, lead_ids[k], rid, uuid7(occ, rnd), cat, pts,
                   occ, occ, expires)

    t0 = time.time()
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO score_history (id, tenant_id, lead_id, rule_id, event_id, category,"
        " points, created_at, occurred_at, expires_at, expired_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)", gen())
    leads = []
    for k in range(n_leads):
        d, e, b = sums[k]
        total = d + e + b
        leads.append((lead_ids[k], tenant, f"decay{k}@acme-{k % 500}.example", f"D{k}",
                      "Head of R&D", "DE", "mql" if total >= 40 else "lead", d, e, b, total,
                      0 if total >= 80 else 1, first_expiry[k], last[k], created, created))
    db.executemany(
        "INSERT INTO leads (id, tenant_id, email, first_name, job_title, country,"
        " lifecycle_stage, demographic_score, engagement_score, behavior_score, total_score,"
        " hot_armed, score_expires_at, last_activity_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", leads)
    db.executemany(
        "INSERT INTO lead_identities (tenant_id, lead_id, kind, value, created_at)"
        " VALUES (?, ?, 'email', ?, ?)", [(tenant, l[0], l[2], created) for l in leads])
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size = os.path.getsize(args.db)
    print(f"leads {n_leads}")
    print(f"rows {len(rows)}")
    print(f"rows_past_expiry {past}")
    print(f"rows_future_expiry {future}")
    print(f"rows_no_expiry {2 * n_leads}")
    print(f"insert_s {time.time() - t0:.1f}")
    print(f"db_mb {size / 1e6:.0f}")


def decay_check(args):
    now = int(time.time() * 1000)
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    tenant = tenant_id(db)
    late = db.execute(
        "SELECT count(*) FROM score_history WHERE tenant_id = ? AND expires_at <= ?"
        " AND expired_at IS NULL", (tenant, now)).fetchone()[0]
    expired, unexpired = db.execute(
        "SELECT count(expired_at), count(*) - count(expired_at) FROM score_history"
        " WHERE tenant_id = ?", (tenant,)).fetchone()
    # every lead against the sums of its unexpired rows (a lead without rows sums to 0)
    bad, sample, bad_expiry = db.execute(
        """WITH s AS (
             SELECT lead_id,
                    SUM(CASE category WHEN 'demographic' THEN points ELSE 0 END) AS d,
                    SUM(CASE category WHEN 'engagement' THEN points ELSE 0 END) AS e,
                    SUM(CASE category WHEN 'behavior' THEN points ELSE 0 END) AS b,
                    MIN(expires_at) AS x
             FROM score_history WHERE tenant_id = ?1 AND expired_at IS NULL GROUP BY lead_id)
           SELECT count(*) FILTER (WHERE l.total_score != COALESCE(s.d + s.e + s.b, 0)
                     OR l.demographic_score != COALESCE(s.d, 0)
                     OR l.engagement_score != COALESCE(s.e, 0)
                     OR l.behavior_score != COALESCE(s.b, 0)),
                  min(l.id) FILTER (WHERE l.total_score != COALESCE(s.d + s.e + s.b, 0)),
                  count(*) FILTER (WHERE l.score_expires_at IS NOT s.x)
           FROM leads l LEFT JOIN s ON s.lead_id = l.id WHERE l.tenant_id = ?1""",
        (tenant,)).fetchone()
    leads, scored, mql, armed = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE total_score > 0),"
        " count(*) FILTER (WHERE lifecycle_stage = 'mql'), sum(hot_armed) FROM leads"
        " WHERE tenant_id = ?", (tenant,)).fetchone()
    scored_events = db.execute(
        "SELECT count(*) FROM events WHERE tenant_id = ? AND event_type = 'lead.scored'",
        (tenant,)).fetchone()[0]
    print(f"rows_expired_total {expired}")
    print(f"rows_unexpired {unexpired}")
    print(f"unexpired_past_expiry {late}")
    print(f"leads {leads}")
    print(f"leads_total_mismatch {bad}")
    print(f"leads_score_expires_at_mismatch {bad_expiry}")
    print(f"leads_with_score {scored}")
    print(f"leads_hot_armed {armed}")
    print(f"lead_scored_events {scored_events}")
    if late or bad or bad_expiry:
        print(f"check FAILED (first mismatched lead: {sample})")
        return 1
    print("check ok")
    return 0


def drain_counts(args):
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    tenant = tenant_id(db)
    q = lambda sql, *p: db.execute(sql, (tenant,) + p).fetchone()[0]
    print(f"score_history_rows {q('SELECT count(*) FROM score_history WHERE tenant_id = ?')}")
    print(f"intent_signals_rows {q('SELECT count(*) FROM intent_signals WHERE tenant_id = ?')}")
    print(f"leads {q('SELECT count(*) FROM leads WHERE tenant_id = ?')}")
    print(f"leads_with_score {q('SELECT count(*) FROM leads WHERE tenant_id = ? AND total_score > 0')}")
    print(f"leads_with_intent {q('SELECT count(*) FROM leads WHERE tenant_id = ? AND primary_intent IS NOT NULL')}")
    mql = q("SELECT count(*) FROM leads WHERE tenant_id = ? AND lifecycle_stage = 'mql'")
    print(f"leads_mql {mql}")
    by_cat = db.execute(
        "SELECT category, count(*), sum(points) FROM score_history WHERE tenant_id = ?"
        " GROUP BY category ORDER BY category", (tenant,)).fetchall()
    print("score_rows_by_category " + ", ".join(f"{c} {n} rows/{p} pts" for c, n, p in by_cat))
    by_rule = db.execute(
        "SELECT r.slug, count(*) FROM score_history h JOIN scoring_rules r ON r.id = h.rule_id"
        " WHERE h.tenant_id = ? GROUP BY r.slug ORDER BY 2 DESC", (tenant,)).fetchall()
    print("score_rows_by_rule " + ", ".join(f"{s} {n}" for s, n in by_rule))
    by_intent = db.execute(
        "SELECT intent, count(*) FROM intent_signals WHERE tenant_id = ? GROUP BY intent"
        " ORDER BY intent", (tenant,)).fetchall()
    print("intent_signals_by_intent " + ", ".join(f"{i} {n}" for i, n in by_intent))
    internal = db.execute(
        "SELECT event_type, count(*) FROM events WHERE tenant_id = ? AND origin = 'internal'"
        " AND received_at >= ? GROUP BY event_type ORDER BY 2 DESC",
        (tenant, args.since_ms)).fetchall()
    print("internal_events " + (", ".join(f"{t} {n}" for t, n in internal) or "none"))
    print(f"internal_events_total {sum(n for _, n in internal)}")
    autos = db.execute(
        "SELECT status, count(*) FROM automation_logs WHERE tenant_id = ? AND created_at >= ?"
        " GROUP BY status ORDER BY status", (tenant, args.since_ms)).fetchall()
    print("automation_logs " + (", ".join(f"{st} {n}" for st, n in autos) or "none"))
    outbox = db.execute(
        "SELECT kind, count(*) FROM deliveries WHERE tenant_id = ? AND created_at >= ?"
        " GROUP BY kind ORDER BY kind", (tenant, args.since_ms)).fetchall()
    print("deliveries " + (", ".join(f"{k} {n}" for k, n in outbox) or "none"))
    routing = db.execute(
        "SELECT routing_status, count(*) FROM leads WHERE tenant_id = ? AND merged_into IS NULL"
        " GROUP BY routing_status ORDER BY 1", (tenant,)).fetchall()
    print("leads_by_routing_status " + ", ".join(f"{s} {n}" for s, n in routing))
    print(f"deals {q('SELECT count(*) FROM deals WHERE tenant_id = ?')}")
    by_pipe = db.execute(
        "SELECT p.slug, count(*) FROM deals d JOIN pipelines p ON p.id = d.pipeline_id"
        " WHERE d.tenant_id = ? GROUP BY p.slug ORDER BY 2 DESC", (tenant,)).fetchall()
    print("deals_by_pipeline " + (", ".join(f"{s} {n}" for s, n in by_pipe) or "none"))
    # how many processed events each stage result names (score and intent results)
    scored = q("SELECT count(*) FROM events WHERE tenant_id = ? AND origin = 'external'"
               " AND status = 'processed' AND result LIKE '%\"score\":{%' AND received_at >= ?",
               args.since_ms)
    print(f"external_events_scored {scored}")
    return 0


PLANS = {
    "decay: leads with rows to expire (decay.c)":
        "SELECT DISTINCT lead_id FROM score_history WHERE tenant_id = :t AND expires_at <= :now"
        " AND expired_at IS NULL LIMIT 500",
    "decay: expire a lead's rows (decay.c, score.c lf_score_recompute; '+' since d7fae69)":
        "UPDATE score_history SET expired_at = :now WHERE tenant_id = :t AND lead_id = :lead"
        " AND +expires_at <= :now AND expired_at IS NULL",
    "the same without the '+' (before d7fae69: quadratic with score_history_due)":
        "UPDATE score_history SET expired_at = :now WHERE tenant_id = :t AND lead_id = :lead"
        " AND expires_at <= :now AND expired_at IS NULL",
    "recompute: sums (score.c lf_score_recompute)":
        "SELECT category, SUM(points), MIN(expires_at) FROM score_history"
        " WHERE tenant_id = :t AND lead_id = :lead AND expired_at IS NULL GROUP BY category",
    "score: max_per_lead count (score.c apply)":
        "SELECT count(*) FROM score_history WHERE tenant_id = :t AND lead_id = :lead"
        " AND rule_id = :rule",
    "score: max_per_day count (score.c apply)":
        "SELECT count(*) FROM score_history WHERE tenant_id = :t AND lead_id = :lead"
        " AND rule_id = :rule AND occurred_at >= :now AND occurred_at < :now",
    "intent: max_per_lead count (intent.c)":
        "SELECT count(*) FROM intent_signals WHERE tenant_id = :t AND lead_id = :lead"
        " AND rule_id = :rule",
    "intent: window sums (intent.c lf_intent_recompute)":
        "SELECT intent, SUM(points) FROM intent_signals WHERE tenant_id = :t AND lead_id = :lead"
        " AND detected_at > :now GROUP BY intent ORDER BY intent",
    "leads: score update (score.c)":
        "UPDATE leads SET total_score = total_score + 1, updated_at = :now"
        " WHERE tenant_id = :t AND id = :lead",
}


def plans(args):
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    for name, sql in PLANS.items():
        print(f"-- {name}")
        for row in db.execute("EXPLAIN QUERY PLAN " + sql, {"t": "t", "now": 0, "lead": "l", "rule": "r"}):
            print("   " + row[3])
    return 0


def wait_drained(args):
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True, timeout=30)
    tenant = tenant_id(db)
    deadline = time.monotonic() + args.timeout
    polls = 0
    while True:
        left = db.execute(
            "SELECT count(*) FROM events WHERE tenant_id = ?"
            " AND status IN ('pending', 'processing', 'failed') AND status != 'failed'",
            (tenant,)).fetchone()[0]
        polls += 1
        if left == 0 or time.monotonic() > deadline:
            break
        time.sleep(args.interval)
    print(f"left {left}")
    print(f"polls {polls}")
    return 0 if left == 0 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("decay-populate")
    a.add_argument("db")
    a.add_argument("--rows", type=int, default=1_000_000)
    a.add_argument("--leads", type=int, default=20_000)
    a.add_argument("--seed", type=int, default=1)
    for name in ("decay-check", "plans"):
        sub.add_parser(name).add_argument("db")
    a = sub.add_parser("wait-drained")
    a.add_argument("db")
    a.add_argument("--timeout", type=float, default=300)
    a.add_argument("--interval", type=float, default=0.25)
    a = sub.add_parser("drain-counts")
    a.add_argument("db")
    a.add_argument("--since-ms", type=int, default=0)
    args = p.parse_args()
    if args.cmd == "decay-populate":
        if args.leads < 1 or args.rows < 2 * args.leads:
            sys.exit("benchdb: --rows must be at least twice --leads")
        return decay_populate(args) or 0
    return {"decay-check": decay_check, "drain-counts": drain_counts, "plans": plans,
            "wait-drained": wait_drained}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
