#!/usr/bin/env node
// Verifies webhook signatures with the npm package `standardwebhooks` (an implementation
// independent of leadflow's), for the end-to-end tests.
//
// Reads one JSON request per line on stdin and writes one JSON answer per line on stdout, so
// a test keeps one process for all its checks:
//   {"secret": "whsec_…", "headers": {"webhook-id": …}, "body": "<raw body as text>",
//    "body_b64": "<raw body, base64>" (instead of body), "now": <unix seconds> (optional)}
//   → {"ok": true, "payload": <the parsed body>} | {"ok": false, "error": "<why>"}
// `now` is the receiver's clock when the request arrived: the package refuses timestamps more
// than 5 minutes from its own clock, and the tests move the server's clock (PUT
// /api/v1/test/clock), so the check runs as of that moment rather than of the wall clock.
"use strict";

const readline = require("readline");
const { Webhook } = require("standardwebhooks");

function verify(req) {
  const body = req.body_b64 !== undefined ? Buffer.from(req.body_b64, "base64") : req.body;
  const realNow = Date.now;
  if (typeof req.now === "number") Date.now = () => Math.round(req.now * 1000);
  try {
    const payload = new Webhook(req.secret).verify(body, req.headers || {});
    return { ok: true, payload: payload === undefined ? null : payload };
  } catch (e) {
    return { ok: false, error: String((e && e.message) || e) };
  } finally {
    Date.now = realNow;
  }
}

const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on("line", (line) => {
  if (line.trim() === "") return;
  let answer;
  try {
    answer = verify(JSON.parse(line));
  } catch (e) {
    answer = { ok: false, error: "bad request line: " + String((e && e.message) || e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
