/**
 * The dashboard in Debian's headless chromium (playwright-core): the page loads, the loss chart gains
 * points as steps are published, samples show up; a screenshot lands in <repo>/artifacts/finetune/.
 * Also: the server binds 127.0.0.1, serves uPlot locally, and replays history at /api/state.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Dashboard, startDashboard } from "./server.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium)
  console.warn(`[finetune dashboard e2e] skipped: no chromium at ${CHROMIUM} (set CHROMIUM_PATH)`);
const ARTIFACTS = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "..",
  "artifacts",
  "finetune",
);

let dash: Dashboard;
beforeAll(async () => {
  dash = await startDashboard({ title: "test run" });
});
afterAll(async () => {
  await dash.close();
});

const step = (i: number) => ({
  type: "step" as const,
  step: i,
  loss: 3 * Math.exp(-i / 10) + 0.5,
  lr: 1e-3 * Math.min(1, i / 5),
  tokensPerSec: 900 + 20 * Math.sin(i),
  ...(i % 5 === 0 ? { valLoss: 3 * Math.exp(-i / 10) + 0.7 } : {}),
});

describe("dashboard server", () => {
  it("binds 127.0.0.1, serves the page and uPlot from node_modules, replays history", async () => {
    expect(dash.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await (await fetch(dash.url)).text();
    expect(page).toContain("<title>test run</title>");
    expect(page).not.toMatch(/https?:\/\/(?!127)/); // no CDN
    const lib = await fetch(new URL("vendor/uPlot.iife.min.js", dash.url));
    expect(lib.status).toBe(200);
    expect((await lib.text()).length).toBeGreaterThan(10_000);
    dash.publish({
      type: "start",
      info: {
        method: "lora",
        task: "chat",
        modelType: "gpt2",
        steps: 40,
        parameters: { trainable: 10, total: 100, share: 0.1 },
      },
    });
    const state = (await (await fetch(new URL("api/state", dash.url))).json()) as { events: unknown[] };
    expect(state.events).toHaveLength(1);
  });
});

describe.skipIf(!haveChromium)("dashboard in headless chromium", () => {
  it("the chart gains points as steps complete; samples before/after; screenshot saved", async () => {
    const profile = mkdtempSync(path.join(tmpdir(), "tf-dash-profile-"));
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
      viewport: { width: 1300, height: 900 },
    });
    try {
      const page = ctx.pages()[0] ?? (await ctx.newPage());
      for (let i = 1; i <= 5; i++) dash.publish(step(i)); // history before the page opens
      dash.publish({ type: "samples", when: "before", samples: [{ prompt: "2+3=?", output: "2+3=?2+" }] });
      await page.goto(dash.url);
      await page.waitForFunction(
        () => (window as unknown as { __dashboard?: { points(): number } }).__dashboard?.points() === 5,
      );
      const counts: number[] = [];
      for (let i = 6; i <= 40; i++) {
        dash.publish(step(i));
        if (i % 7 === 0) {
          await page.waitForFunction(
            (n) => (window as unknown as { __dashboard: { points(): number } }).__dashboard.points() >= n,
            i,
          );
          counts.push(
            await page.evaluate(() =>
              (window as unknown as { __dashboard: { points(): number } }).__dashboard.points(),
            ),
          );
        }
      }
      dash.publish({ type: "samples", when: "after", samples: [{ prompt: "2+3=?", output: "5" }] });
      dash.publish({ type: "done", report: { steps: 40, finalLoss: 0.55, wallTimeSec: 12.5 } });
      await page.waitForFunction(
        () => document.querySelector('[data-testid="status"]')?.textContent === "finished",
      );
      expect(counts).toEqual([7, 14, 21, 28, 35]);
      expect(
        await page.evaluate(() =>
          (window as unknown as { __dashboard: { valPoints(): number } }).__dashboard.valPoints(),
        ),
      ).toBe(8);
      // uPlot drew into canvases; the samples table shows before and after
      expect(await page.locator('[data-testid="loss-chart"] canvas').count()).toBe(1);
      const row = await page.locator('[data-testid="samples"] tbody tr').first().textContent();
      expect(row).toContain("2+3=?2+");
      expect(row).toMatch(/\b5\b/);
      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = path.join(ARTIFACTS, "dashboard.png");
      await page.screenshot({ path: shot, fullPage: true });
      expect(existsSync(shot)).toBe(true);
    } finally {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    }
  }, 60_000);
});
