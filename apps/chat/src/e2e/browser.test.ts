/**
 * End-to-end: the built page in Debian's chromium (driven by playwright-core) against an OpenAI-compatible
 * server that streams slowly. Screenshots land in <repo>/artifacts/chat/.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatAppRoot, ensureChatAppBuilt } from "../assets.js";
import { type MockServer, startMockOpenAI } from "../testing/mock-openai.js";
import { type ChatUiServer, startChatUiServer } from "../ui-server.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium)
  console.warn(
    `[chat e2e] skipped: no chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`,
  );

const ARTIFACTS = resolve(chatAppRoot(), "..", "..", "artifacts", "chat");

describe.skipIf(!haveChromium)("chat page in a real browser", () => {
  let mock: MockServer;
  let ui: ChatUiServer;
  let ctx: BrowserContext;
  let page: Page;
  let profile: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    await ensureChatAppBuilt();
    mock = await startMockOpenAI({ tokenDelayMs: 45 });
    ui = await startChatUiServer({ apiBase: mock.url });
    profile = mkdtempSync(join(tmpdir(), "typeformer-chat-e2e-"));
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
      ],
      viewport: { width: 1360, height: 820 },
    });
    page = ctx.pages()[0] ?? (await ctx.newPage());
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(ui.url);
    await page.getByTestId("server-status").filter({ hasText: "connected" }).waitFor();
  });

  afterAll(async () => {
    await ctx?.close();
    await ui?.close();
    await mock?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  const lastReply = () => page.getByTestId("reply-text").last();

  it("streams a reply token by token, then shows token probabilities and the attention heatmap", async () => {
    await page.screenshot({ path: join(ARTIFACTS, "01-empty.png") });
    await page.getByLabel("Message", { exact: true }).fill("Tell me about the sea.");
    await page.keyboard.press("Enter");
    await expect.poll(() => page.getByTestId("user-message").count()).toBe(1);

    // sample the reply's length on every animation frame until it is finished
    const lengths = await page.evaluate(
      () =>
        new Promise<number[]>((done) => {
          const seen: number[] = [];
          const started = performance.now();
          const tick = () => {
            const replies = document.querySelectorAll('[data-testid="reply-text"]');
            const text = replies[replies.length - 1]?.textContent ?? "";
            const finished = document.querySelector('[data-testid="finish-reason"]') !== null;
            if (seen.length === 0 || seen[seen.length - 1] !== text.length) seen.push(text.length);
            if (finished || performance.now() - started > 20_000) done(seen);
            else requestAnimationFrame(tick);
          };
          tick();
        }),
    );
    const growing = lengths.filter((n) => n > 0);
    expect(growing.length, `reply lengths seen across frames: ${lengths.join(",")}`).toBeGreaterThanOrEqual(
      3,
    );
    for (let i = 1; i < growing.length; i++) expect(growing[i]).toBeGreaterThan(growing[i - 1]);
    await expect.poll(() => page.getByTestId("finish-reason").last().textContent()).toBe("done");
    expect(await lastReply().textContent()).toMatch(/^Call me Ishmael\..*circulation\.$/);
    await page.screenshot({ path: join(ARTIFACTS, "02-reply.png") });

    // look inside: the tokens view
    await page.getByTestId("look-inside-toggle").click();
    const chips = page.getByTestId("token-stream").locator("button");
    expect(await chips.count()).toBeGreaterThan(20);
    await chips.nth(2).hover();
    const detail = page.getByTestId("token-detail");
    await expect.poll(() => detail.textContent()).toMatch(/Token #3.*Ishmael.*picked/);
    expect(await detail.locator("tbody tr").count()).toBe(5);
    // keyboard: focusing a token shows its alternatives too
    await chips.nth(4).focus();
    await expect.poll(() => detail.textContent()).toMatch(/Token #5/);
    await page.screenshot({ path: join(ARTIFACTS, "03-tokens.png") });

    // the attention heatmap
    await page.getByRole("tab", { name: "Attention" }).click();
    const heatmap = page.getByTestId("heatmap");
    await heatmap.waitFor({ state: "visible", timeout: 10_000 });
    const inked = await heatmap.evaluate((c: HTMLCanvasElement) => {
      const ctx2d = c.getContext("2d")!;
      const { data } = ctx2d.getImageData(0, 0, c.width, c.height);
      let dark = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] < 200) dark++;
      return { dark, w: c.width, h: c.height };
    });
    expect(inked.w).toBeGreaterThan(50);
    expect(inked.dark).toBeGreaterThan(50);
    await page.getByLabel("Head", { exact: true }).selectOption("0");
    await heatmap.focus();
    await page.keyboard.press("ArrowUp");
    await expect.poll(() => page.locator(".heatmap-readout").textContent()).toMatch(/→.*%/);
    await page.screenshot({ path: join(ARTIFACTS, "04-attention.png") });
    await page.getByRole("tab", { name: "How it works" }).click();
    await expect.poll(() => page.getByTestId("look-inside").textContent()).toMatch(/Temperature.*Attention/s);
  });

  it("stop ends generation mid-stream and the server cancels it", async () => {
    const cancelledBefore = mock.stats.cancelled;
    await page.getByLabel("Message", { exact: true }).fill("Keep going.");
    await page.keyboard.press("Enter");
    await expect.poll(async () => (await lastReply().textContent())?.length ?? 0).toBeGreaterThan(20);
    await page.getByTestId("stop").click();
    await expect.poll(() => page.getByTestId("finish-reason").last().textContent()).toBe("stopped");
    const text = (await lastReply().textContent()) ?? "";
    expect(text.length).toBeLessThan(200);
    await expect.poll(() => mock.stats.cancelled).toBe(cancelledBefore + 1);
    // nothing grows after stop
    await page.waitForTimeout(300);
    expect(await lastReply().textContent()).toBe(text);
    expect(await page.getByTestId("send").isVisible()).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, "05-stopped.png") });

    // regenerate replaces the stopped reply with a full one
    await page.getByRole("button", { name: /Regenerate/ }).click();
    await page.getByTestId("stop").waitFor({ state: "visible" });
    await page.getByTestId("send").waitFor({ state: "visible", timeout: 15_000 });
    expect(await page.getByTestId("finish-reason").last().textContent()).toBe("done");
    expect(await page.getByTestId("assistant-message").count()).toBe(2);
  });

  it("shows server errors as readable messages and stays usable", async () => {
    await page.getByLabel("Message", { exact: true }).fill("/429 please");
    await page.keyboard.press("Enter");
    await expect
      .poll(() => page.getByTestId("reply-error").last().textContent())
      .toMatch(/busy.*try again in 2 s/);
    await page.getByLabel("Message", { exact: true }).fill("/toolong");
    await page.keyboard.press("Enter");
    await expect.poll(() => page.getByTestId("reply-error").last().textContent()).toMatch(/too long.*512/);
    await page.screenshot({ path: join(ARTIFACTS, "06-errors.png") });
    await page.getByRole("button", { name: "Clear" }).click();
    expect(await page.getByTestId("assistant-message").count()).toBe(0);
  });

  it("works by keyboard alone, and every control has a label", async () => {
    await page.reload();
    await expect.poll(() => page.getByTestId("server-status").textContent()).toBe("connected");
    await page.keyboard.press("Tab"); // skip link
    await page.keyboard.press("Enter");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("composer-input");
    await page.keyboard.type("Hello by keyboard");
    await page.keyboard.press("Enter");
    await expect.poll(async () => (await lastReply().textContent())?.length ?? 0).toBeGreaterThan(5);
    await page.keyboard.press("Escape");
    await expect.poll(() => page.getByTestId("finish-reason").last().textContent()).toBe("stopped");

    const unlabelled = await page.evaluate(() => {
      const bad: string[] = [];
      const all = Array.from(
        document.querySelectorAll<HTMLElement>("button, input, select, textarea, [tabindex]"),
      );
      for (const el of all) {
        const id = el.id;
        const named =
          el.getAttribute("aria-label") ||
          el.getAttribute("aria-labelledby") ||
          (id && document.querySelector(`label[for="${id}"]`)) ||
          el.closest("label") ||
          (el.tagName === "BUTTON" && el.textContent?.trim());
        if (!named) bad.push(el.outerHTML.slice(0, 80));
      }
      return bad;
    });
    expect(unlabelled).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
