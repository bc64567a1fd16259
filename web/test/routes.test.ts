// The route handlers against a loopback HTTP server standing in for scoring
// (the real scoring service is exercised by tests/e2e/browser.sh). The
// server records what the handler forwarded.
import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { handleScore } from "../lib/score";
import { handleSimilar } from "../lib/similar";
import { handleHealth, handleReady } from "../lib/ready";

interface Seen { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }
let seen: Seen[] = [];
let answer: { status: number; body: string } = { status: 200, body: "{}" };
let server: http.Server;
let base = "";

before(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(answer.status, { "content-type": "application/json" });
      res.end(answer.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  seen = [];
  answer = { status: 200, body: "{}" };
  process.env.SCORING_SERVICE_URL = base;
  delete process.env.SERVICE_TOKEN_FILE;
  delete process.env.MAX_UPLOAD_BYTES;
  process.stdout.write = ((w) => (s: string | Uint8Array) => (String(s).includes('"target":"aurum_web"') ? true : w(s)))(
    process.stdout.write.bind(process.stdout),
  ) as typeof process.stdout.write;
});

const JPEG = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46, 0x49, 0x46, 0xff, 0xd9]);

function upload(file: Uint8Array | string, fields: Record<string, string> = {}, type = "image/jpeg", headers: Record<string, string> = {}) {
  const form = new FormData();
  form.append("image", new Blob([file as BlobPart], { type }), "photo.jpg");
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return new Request("http://frontend.test/api/web/score", { method: "POST", body: form, headers });
}

const body = async (r: Response) => JSON.parse(await r.text());

test("a photo is forwarded to scoring's /api/score and its answer handed back", async () => {
  answer = { status: 200, body: JSON.stringify({ score: 71.4, percentile: 50 }) };
  const r = await handleScore(upload(JPEG, { userId: " ada " }));
  assert.equal(r.status, 200);
  assert.deepEqual(await body(r), { score: 71.4, percentile: 50 });
  assert.equal(seen.length, 1);
  assert.equal(seen[0].method, "POST");
  assert.equal(seen[0].url, "/api/score");
  assert.match(String(seen[0].headers["content-type"]), /^multipart\/form-data/);
  const text = seen[0].body.toString("latin1");
  assert.match(text, /name="image"/);
  assert.match(text, /Content-Type: image\/jpeg/i);
  assert.match(text, /name="userId"\r\n\r\nada\r\n/);
  assert.equal(seen[0].headers.authorization, undefined);
});

test("with SERVICE_TOKEN_FILE the bearer token goes to scoring (contract 1)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "web-test-"));
  writeFileSync(join(dir, "token"), "  s3cret-token\n");
  process.env.SERVICE_TOKEN_FILE = join(dir, "token");
  await handleScore(upload(JPEG));
  assert.equal(seen[0].headers.authorization, "Bearer s3cret-token");
  await handleReady(new Request("http://frontend.test/api/ready"));
  assert.equal(seen[1].headers.authorization, "Bearer s3cret-token");
});

test("an empty token file is a 500 naming the misconfiguration, nothing forwarded", async () => {
  const dir = mkdtempSync(join(tmpdir(), "web-test-"));
  writeFileSync(join(dir, "token"), "\n");
  process.env.SERVICE_TOKEN_FILE = join(dir, "token");
  const r = await handleScore(upload(JPEG));
  assert.equal(r.status, 500);
  assert.equal((await body(r)).error.code, "misconfigured");
  assert.equal(seen.length, 0);
});

test("scoring's errors come back with their status and code", async () => {
  answer = { status: 422, body: JSON.stringify({ error: { code: "no_face", message: "no face found" } }) };
  const r = await handleScore(upload(JPEG));
  assert.equal(r.status, 422);
  assert.equal((await body(r)).error.code, "no_face");
});

test("a text file is refused with 415 before anything is forwarded", async () => {
  const r = await handleScore(upload("just some text\n", {}, "text/plain"));
  assert.equal(r.status, 415);
  assert.equal((await body(r)).error.code, "unsupported_content_type");
  assert.equal(seen.length, 0);
});

test("a text file named .jpg is refused too (the bytes decide)", async () => {
  const r = await handleScore(upload("not a jpeg", {}, "image/jpeg"));
  assert.equal(r.status, 415);
  assert.equal(seen.length, 0);
});

test("a photo over the limit is refused with 413 before anything is forwarded", async () => {
  process.env.MAX_UPLOAD_BYTES = "1000";
  const big = new Uint8Array(5000);
  big.set(JPEG.subarray(0, 4));
  const r = await handleScore(upload(big));
  assert.equal(r.status, 413);
  assert.equal((await body(r)).error.code, "payload_too_large");
  assert.equal(seen.length, 0);
});

test("a body over the limit without Content-Length is cut off while streaming", async () => {
  process.env.MAX_UPLOAD_BYTES = "1000";
  const chunk = new Uint8Array(64 * 1024);
  let sent = 0;
  const streamBody = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent++ < 100) c.enqueue(chunk);
      else c.close();
    },
  });
  const req = new Request("http://frontend.test/api/web/score", {
    method: "POST",
    body: streamBody,
    headers: { "content-type": "multipart/form-data; boundary=x" },
    // @ts-expect-error node's fetch needs duplex for a stream body
    duplex: "half",
  });
  const r = await handleScore(req);
  assert.equal(r.status, 413);
  assert.ok(sent < 100, `read ${sent} chunks of 64 KiB, want it to stop early`);
  assert.equal(seen.length, 0);
});

test("no photo, a raw body and a bad user id are refused locally", async () => {
  const form = new FormData();
  form.append("userId", "ada");
  let r = await handleScore(new Request("http://frontend.test/api/web/score", { method: "POST", body: form }));
  assert.equal((await body(r)).error.code, "missing_image");
  r = await handleScore(new Request("http://frontend.test/api/web/score", { method: "POST", body: JPEG, headers: { "content-type": "image/jpeg" } }));
  assert.equal(r.status, 415);
  r = await handleScore(upload(JPEG, { userId: "a\u0001b" }));
  assert.equal((await body(r)).error.code, "invalid_user_id");
  assert.equal(seen.length, 0);
});

test("scoring down: 503 scoring_unavailable, and /api/ready says unavailable", async () => {
  // A port that was just free: nothing listens there.
  const probe = http.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  process.env.SCORING_SERVICE_URL = `http://127.0.0.1:${port}`;
  const r = await handleScore(upload(JPEG));
  assert.equal(r.status, 503);
  assert.equal((await body(r)).error.code, "scoring_unavailable");
  const ready = await handleReady(new Request("http://frontend.test/api/ready"));
  assert.equal(ready.status, 503);
  const b = await body(ready);
  assert.equal(b.status, "unavailable");
  assert.equal(b.checks.scoring.ok, false);
  assert.match(b.checks.scoring.detail, /ECONNREFUSED/);
});

test("scoring answering non-JSON becomes 502 upstream_error", async () => {
  answer = { status: 500, body: "<html>oops</html>" };
  const r = await handleScore(upload(JPEG));
  assert.equal(r.status, 502);
  assert.equal((await body(r)).error.code, "upstream_error");
});

test("ready and health answer like the Rust services", async () => {
  const h = handleHealth(new Request("http://frontend.test/api/health"));
  assert.deepEqual(await body(h), { status: "ok" });
  const r = await handleReady(new Request("http://frontend.test/api/ready"));
  assert.equal(r.status, 200);
  assert.deepEqual(await body(r), { status: "ready", checks: { scoring: { name: "scoring", ok: true, required: true } } });
  assert.equal(seen[0].url, "/api/health");
});

test("similar users are forwarded with the id escaped and the limit bounded", async () => {
  answer = { status: 200, body: JSON.stringify({ userId: "a b", similar: [] }) };
  const r = await handleSimilar(new Request("http://frontend.test/api/web/similar/a%20b?limit=999"), "a b");
  assert.equal(r.status, 200);
  assert.equal(seen[0].url, "/api/similar/a%20b?limit=5");
  const bad = await handleSimilar(new Request("http://frontend.test/api/web/similar/x"), "x".repeat(200));
  assert.equal(bad.status, 400);
  assert.equal(seen.length, 1);
});

test("API answers carry the security headers; HSTS only over TLS", async () => {
  const plain = handleHealth(new Request("http://frontend.test/api/health"));
  assert.match(plain.headers.get("content-security-policy")!, /default-src 'none'.*frame-ancestors 'none'/);
  assert.equal(plain.headers.get("x-content-type-options"), "nosniff");
  assert.equal(plain.headers.get("strict-transport-security"), null);
  const proxied = handleHealth(new Request("http://frontend.test/api/health", { headers: { "x-forwarded-proto": "https" } }));
  assert.match(proxied.headers.get("strict-transport-security")!, /max-age=\d+/);
  const direct = handleHealth(new Request("https://frontend.test/api/health"));
  assert.ok(direct.headers.get("strict-transport-security"));
});
