// The built-in UI in a real browser (Debian's chromium driven by
// playwright-core): search the demo Deployment, open its trace, collapse and
// expand a ReplicaSet, open the Deployment's details and find the coloured
// diff, switch the display mode. Screenshots go to KT_SCREENSHOT_DIR.
// Env: KT_UI_URL (e.g. http://127.0.0.1:16686), cluster `tracetest`.
import { chromium } from "playwright-core";
import path from "node:path";
import os from "node:os";
import fs from "node:fs";

const base = process.env.KT_UI_URL;
const shots = process.env.KT_SCREENSHOT_DIR || os.tmpdir();
let passed = 0, failed = 0;
const check = (ok, what) => { if (ok) passed++; else { failed++; console.log("FAIL:", what); } };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  await page.goto(base + "/search");
  await page.waitForSelector("#mode option", { state: "attached" });
  check((await page.$$eval("#mode option", (o) => o.length)) === 16, "16 display modes offered");
  await page.selectOption("#cluster", "tracetest");
  await page.selectOption("#mode", "tracing [full tree]");
  await page.fill("#resource", "deployments");
  await page.fill("#name", "demo");
  await page.press("#name", "Enter"); // keyboard submits
  await page.waitForSelector(".result", { timeout: 10000 });
  check(page.url().includes("resource=deployments"), "search state in the URL");
  await page.screenshot({ path: path.join(shots, "ui-search.png") });

  await page.click(".result");
  await page.waitForSelector("#trace-view .span-row");
  const rows = await page.$$(".span-row");
  check(rows.length >= 11, "Deployment, 2 ReplicaSets and pods shown: " + rows.length);
  check(/\/trace\/ff21000000e1e3e7[0-9a-f]{16}$/.test(page.url()), "shareable trace URL");

  // Collapse then expand the first ReplicaSet with the keyboard.
  const rs = page.locator(".span-row", { hasText: "replicasets" }).first();
  const before = await page.$$eval(".span-row", (r) => r.length);
  await rs.focus();
  await page.keyboard.press("ArrowLeft");
  const collapsedRows = await page.$$eval(".span-row", (r) => r.length);
  check(collapsedRows < before, "ReplicaSet collapses");
  await page.locator(".span-row", { hasText: "replicasets" }).first().focus();
  await page.keyboard.press("ArrowRight");
  check((await page.$$eval(".span-row", (r) => r.length)) === before, "ReplicaSet expands");

  // The Deployment's details: requests as logs, diffs coloured.
  await page.locator(".span-row").first().click();
  await page.waitForSelector(".span-details .log");
  const oldLines = await page.$$eval(".diff-line.old", (l) => l.map((x) => x.textContent));
  const newLines = await page.$$eval(".diff-line.new", (l) => l.map((x) => x.textContent));
  check(oldLines.some((t) => t.includes("status.observedGeneration 1")) &&
        newLines.some((t) => t.includes("status.observedGeneration 2")), "observedGeneration diff shown");
  check(!(await page.content()).includes("managedFields"), "no managedFields anywhere");
  const snap = page.locator(".snapshot summary").first();
  await snap.click();
  check(await page.locator(".snapshot pre").first().isVisible(), "snapshot unfolds");
  await page.screenshot({ path: path.join(shots, "ui-trace.png"), fullPage: true });

  // Switch to tree mode: same search, other shape.
  await page.selectOption("#mode-switch", "01000000");
  await page.waitForURL(/\/trace\/ff01000000/);
  await page.waitForSelector(".span-row");
  check((await page.$$eval(".span-row", (r) => r.length)) > before, "tree mode shows request spans");
  await page.screenshot({ path: path.join(shots, "ui-tree.png") });
  check(errors.length === 0, "no page errors: " + errors.join("; "));
} catch (e) {
  failed++;
  console.log("FAIL:", e.message);
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
