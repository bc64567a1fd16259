// The browser half of tests/e2e/browser.sh: Debian's chromium (headless,
// through puppeteer-core) uses the frontend the way a person would, against
// the real stack. Prints one `ok ...` line per check; exits 1 at the first
// failure with the reason.
//
// Environment: FRONTEND_URL, PHOTO (yaoming.jpg), OUT_DIR (screenshots and
// scratch files), STOP_SCORING (a shell command that stops scoring),
// CHROME (default /usr/bin/chromium), SIMILAR_USER (a user id already indexed).
import puppeteer from "puppeteer-core";
import { execSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const need = (k) => process.env[k] || (console.error(`driver: ${k} is not set`), process.exit(2));
const url = need("FRONTEND_URL");
const photo = need("PHOTO");
const out = need("OUT_DIR");
const stopScoring = need("STOP_SCORING");
const similarUser = process.env.SIMILAR_USER || "";

const ok = (msg) => console.log(`ok ${msg}`);
function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROME || "/usr/bin/chromium",
  headless: true,
  // root in CI: chromium's sandbox needs an unprivileged user.
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--lang=en-US"],
  defaultViewport: { width: 1280, height: 900, deviceScaleFactor: 1 },
});
let failed = false;
try {
  const page = await browser.newPage();
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error" && !/Failed to load resource/.test(m.text())) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(String(e)));

  // The page and its headers.
  const res = await page.goto(url, { waitUntil: "networkidle0" });
  check(res.status() === 200, `GET / answered ${res.status()}`);
  const h = res.headers();
  const csp = h["content-security-policy"] || "";
  check(/script-src [^;]*'nonce-/.test(csp), `no script nonce in the CSP: ${csp}`);
  check(!/unsafe-eval/.test(csp) && !/script-src[^;]*unsafe-inline/.test(csp), `CSP allows unsafe scripts: ${csp}`);
  check(/frame-ancestors 'none'/.test(csp), `CSP without frame-ancestors 'none': ${csp}`);
  check(h["x-content-type-options"] === "nosniff", "no X-Content-Type-Options: nosniff");
  check(/camera=\(self\)/.test(h["permissions-policy"] || ""), `Permissions-Policy: ${h["permissions-policy"]}`);
  check(!!h["referrer-policy"], "no Referrer-Policy");
  check(!h["strict-transport-security"], "HSTS sent over plain HTTP");
  ok("page served with a nonce CSP and the security headers, no HSTS over plain HTTP");

  // Keyboard: the skip link, then the file chooser's button.
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement?.textContent?.includes("Skip")), "first Tab does not reach the skip link");
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement?.id === "photo"), "second Tab does not reach the photo input");
  ok("keyboard: Tab reaches the skip link, then the photo chooser");

  // One upload through the file input; the answer the page received is the API's.
  async function uploadAndWait(file, { userId = "" } = {}) {
    await page.$eval("#user-id", (el) => (el.value = ""));
    if (userId) await page.type("#user-id", userId);
    const answer = page.waitForResponse((r) => r.url().endsWith("/api/web/score") && r.request().method() === "POST", { timeout: 90000 });
    const input = await page.$("#photo");
    await input.uploadFile(file);
    return answer;
  }

  const started = Date.now();
  const r1 = await uploadAndWait(photo, { userId: similarUser ? "browser-e2e" : "" });
  check(r1.status() === 200, `POST /api/web/score answered ${r1.status()}: ${await r1.text()}`);
  const api = await r1.json();
  await page.waitForSelector('[data-testid="score"]', { timeout: 30000 });
  await page.waitForSelector('[data-testid="face-box"]', { timeout: 30000 });
  const scoreText = await page.$eval('[data-testid="score"]', (el) => el.firstChild.textContent);
  check(scoreText === api.score.toFixed(1), `score shown ${scoreText}, API said ${api.score}`);
  const pct = await page.$eval('[data-testid="percentile"]', (el) => el.textContent);
  check(typeof api.percentile === "number", `API percentile ${api.percentile} (Redis runs, want a number)`);
  check(pct.includes(`${api.percentile.toFixed(0)}%`), `percentile shown "${pct}", API said ${api.percentile}`);
  ok(`score ${scoreText} and percentile "${pct}" shown as the API answered (${Date.now() - started} ms)`);

  const bars = await page.$$eval('[role="meter"]', (els) => els.map((e) => Number(e.getAttribute("aria-valuenow"))));
  const want = ["detection", "size", "frontality", "symmetry", "sharpness"].map((k) => Math.round(api.components[k] * 100));
  check(JSON.stringify(bars) === JSON.stringify(want), `bars ${bars}, API components ${want}`);
  ok(`five component bars ${bars.join(", ")}`);

  const boxes = await page.$$('[data-testid="face-box"]');
  check(boxes.length === 1, `${boxes.length} face boxes shown, want 1`);
  const geo = await page.evaluate(() => {
    const img = document.querySelector('[data-testid="photo"]');
    const r = img.getBoundingClientRect();
    const b = document.querySelector('[data-testid="face-box"]').getBoundingClientRect();
    const lm = [...document.querySelectorAll('[data-testid="landmark"]')].map((c) => {
      const q = c.getBoundingClientRect();
      return [q.x + q.width / 2, q.y + q.height / 2];
    });
    return { img: { x: r.x, y: r.y, w: r.width, h: r.height, nw: img.naturalWidth, nh: img.naturalHeight }, box: { x: b.x, y: b.y, w: b.width, h: b.height }, lm };
  });
  // The SVG rect's bounding box includes half the stroke on each side.
  const sx = geo.img.w / geo.img.nw;
  const sy = geo.img.h / geo.img.nh;
  const [x1, y1, x2, y2] = api.face.box;
  const exp = { x: geo.img.x + x1 * sx, y: geo.img.y + y1 * sy, w: (x2 - x1) * sx, h: (y2 - y1) * sy };
  const tol = 3;
  const centre = (r) => [r.x + r.w / 2, r.y + r.h / 2];
  const [ecx, ecy] = centre(exp);
  const [gcx, gcy] = centre(geo.box);
  check(Math.abs(ecx - gcx) < tol && Math.abs(ecy - gcy) < tol && Math.abs(exp.w - geo.box.w) < 2 * tol && Math.abs(exp.h - geo.box.h) < 2 * tol,
    `face box on screen ${JSON.stringify(geo.box)}, API box maps to ${JSON.stringify(exp)}`);
  check(geo.lm.length === 5, `${geo.lm.length} landmarks drawn, want 5`);
  geo.lm.forEach(([x, y], i) => {
    const [ax, ay] = api.face.landmarks[i];
    check(Math.abs(geo.img.x + ax * sx - x) < tol && Math.abs(geo.img.y + ay * sy - y) < tol, `landmark ${i} at ${x},${y}, API ${ax},${ay}`);
  });
  ok(`one face box where the API put it (${api.face.box.map((v) => v.toFixed(1)).join(", ")} on a ${geo.img.nw}x${geo.img.nh} photo, shown at ${geo.img.w.toFixed(0)}x${geo.img.h.toFixed(0)}) and five landmarks`);

  if (similarUser) {
    await page.waitForFunction((u) => [...document.querySelectorAll('[data-testid="similar"] li')].some((li) => li.textContent.includes(u)), { timeout: 30000 }, similarUser);
    ok(`similar users listed, ${similarUser} among them`);
  }
  const focused = await page.evaluate(() => document.activeElement?.tagName + ":" + document.activeElement?.textContent);
  check(/H2:.*Your score/.test(focused), `focus after scoring is on ${focused}, want the result heading`);
  ok("focus moves to the result heading (screen readers announce it)");
  await page.screenshot({ path: join(out, "result.png"), fullPage: true });
  ok(`screenshot ${join(out, "result.png")}`);

  async function expectError(file, pattern, what) {
    const input = await page.$("#photo");
    await input.uploadFile(file);
    await page.waitForSelector('[data-testid="error"]', { timeout: 30000 });
    const text = await page.$eval('[data-testid="error"]', (el) => el.textContent);
    check(pattern.test(text), `${what}: error shown "${text}", want ${pattern}`);
    ok(`${what}: "${text.replace(/Choose another photo$/, "").trim()}"`);
  }

  // A text file, then a 20 MB file: refused in the page at once...
  const textFile = join(out, "notes.txt");
  writeFileSync(textFile, "these are not the pixels you are looking for\n");
  await expectError(textFile, /JPEG, PNG or WebP/, "text file");
  const bigFile = join(out, "big.jpg");
  const big = Buffer.alloc(20 * 1024 * 1024, 0x20);
  big.set([0xff, 0xd8, 0xff, 0xe0]);
  writeFileSync(bigFile, big);
  await expectError(bigFile, /at most 10 MB/, "20 MB file");
  // ...and by the frontend's route handler for a client that skips the page's checks.
  const server = await page.evaluate(async () => {
    const send = async (blob) => {
      const f = new FormData();
      f.append("image", blob, "x.jpg");
      const r = await fetch("/api/web/score", { method: "POST", body: f });
      return [r.status, (await r.json()).error?.code];
    };
    const big = new Uint8Array(20 * 1024 * 1024);
    big.set([0xff, 0xd8, 0xff, 0xe0]);
    return { text: await send(new Blob(["plain text"], { type: "image/jpeg" })), big: await send(new Blob([big], { type: "image/jpeg" })) };
  });
  check(server.text[0] === 415 && server.text[1] === "unsupported_content_type", `server on a text file: ${server.text}`);
  check(server.big[0] === 413 && server.big[1] === "payload_too_large", `server on 20 MB: ${server.big}`);
  ok(`route handler refuses them too: text ${server.text.join(" ")}, 20 MB ${server.big.join(" ")}`);

  // Still usable: the photo again (scoring's cache answers).
  const r2 = await uploadAndWait(photo);
  check(r2.status() === 200 && (await r2.json()).cached === true, `second upload: ${r2.status()}`);
  await page.waitForSelector('[data-testid="score"]', { timeout: 30000 });
  ok("the page still works after the errors (second upload scored, from the cache)");

  // Scoring stopped: a friendly error, and the page stays usable.
  execSync(stopScoring, { stdio: "inherit" });
  await expectError(photo, /not reachable/, "scoring stopped");
  await page.screenshot({ path: join(out, "scoring-down.png"), fullPage: true });
  check(await page.$eval("#photo", (el) => !el.disabled), "the photo input is disabled after the error");
  ok("after the error the photo input is enabled again");

  check(problems.length === 0, `console errors (CSP violations, exceptions): ${problems.join(" | ")}`);
  ok("no console errors and no CSP violations");
} catch (e) {
  failed = true;
  console.error(`not ok ${e.message}`);
  try {
    const pages = await browser.pages();
    await pages[pages.length - 1].screenshot({ path: join(out, "failure.png"), fullPage: true });
    console.error(`screenshot of the failure: ${join(out, "failure.png")}`);
  } catch {}
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
