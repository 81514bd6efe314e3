/**
 * End-to-end: the built page in Debian's chromium (driven by playwright-core) against an OpenAI-compatible
 * server that streams slowly. Screenshots land in <repo>/artifacts/chat/.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { initBackend, tf } from "@typeformer/core";
import { createServer, type LoadedModel, listen, loadModelDir, type RunningServer } from "@typeformer/serve";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatAppRoot, ensureChatAppBuilt } from "../assets.js";
import { createDemoModelDir } from "../demo-model.js";
import { type MockServer, startMockOpenAI } from "../testing/mock-openai.js";
import { type ChatUiServer, startChatUiServer } from "../ui-server.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium)
  console.warn(
    `[chat e2e] skipped: no chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`,
  );

const ARTIFACTS = resolve(chatAppRoot(), "..", "..", "artifacts", "chat");

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
  "--no-first-run",
];

/** The last reply's text length, sampled on every animation frame until the reply is finished. */
function replyLengthsUntilDone(page: Page): Promise<number[]> {
  return page.evaluate(
    () =>
      new Promise<number[]>((done) => {
        const seen: number[] = [];
        const started = performance.now();
        const count = document.querySelectorAll('[data-testid="finish-reason"]').length;
        const tick = () => {
          const replies = document.querySelectorAll('[data-testid="reply-text"]');
          const text = replies[replies.length - 1]?.textContent ?? "";
          const finished = document.querySelectorAll('[data-testid="finish-reason"]').length > count;
          if (seen.length === 0 || seen[seen.length - 1] !== text.length) seen.push(text.length);
          if (finished || performance.now() - started > 30_000) done(seen);
          else requestAnimationFrame(tick);
        };
        tick();
      }),
  );
}

function expectGrowth(lengths: number[]): void {
  const growing = lengths.filter((n) => n > 0);
  expect(growing.length, `reply lengths seen across frames: ${lengths.join(",")}`).toBeGreaterThanOrEqual(3);
  for (let i = 1; i < growing.length; i++) expect(growing[i]).toBeGreaterThan(growing[i - 1]);
}

async function launch(profile: string): Promise<{ ctx: BrowserContext; page: Page }> {
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1360, height: 820 },
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  return { ctx, page };
}

describe.skipIf(!haveChromium)("chat page in a real browser (mock server)", () => {
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
    ({ ctx, page } = await launch(profile));
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

    const lengths = await replyLengthsUntilDone(page);
    expectGrowth(lengths);
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
    // keyboard: focusing a token shows its alternatives too; arrow keys move between tokens
    await chips.nth(4).focus();
    await expect.poll(() => detail.textContent()).toMatch(/Token #5/);
    await page.keyboard.press("ArrowRight");
    await expect.poll(() => detail.textContent()).toMatch(/Token #6/);
    expect(await page.evaluate(() => document.activeElement?.getAttribute("tabindex"))).toBe("0");
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
    // a server that refuses logprobs still gets a reply (without the Tokens view)
    await page.getByLabel("Message", { exact: true }).fill("/nologprobs");
    await page.keyboard.press("Enter");
    await page.getByTestId("stop").waitFor({ state: "visible" });
    await page.getByTestId("send").waitFor({ state: "visible", timeout: 15_000 });
    expect(await lastReply().textContent()).toMatch(/^Call me Ishmael/);
    // a 500 in chat mode suggests the plain-text mode
    await page.getByLabel("Message", { exact: true }).fill("/500");
    await page.keyboard.press("Enter");
    await expect
      .poll(() => page.getByTestId("reply-error").last().textContent())
      .toMatch(/500.*Continue text/);
    await page.screenshot({ path: join(ARTIFACTS, "06-errors.png") });
    await page.getByRole("button", { name: "Clear" }).click();
    expect(await page.getByTestId("assistant-message").count()).toBe(0);
  });

  it("continue-text mode sends the running text to /v1/completions", async () => {
    await page.getByLabel("Mode", { exact: true }).selectOption("complete");
    await page.getByLabel("Message", { exact: true }).fill("Call me");
    await page.keyboard.press("Enter");
    await page.getByTestId("stop").waitFor({ state: "visible" });
    await page.getByTestId("send").waitFor({ state: "visible", timeout: 15_000 });
    expect(await lastReply().textContent()).toMatch(/^Call me Ishmael\./);
    expect(mock.stats.lastBody).toMatchObject({ prompt: "Call me", logprobs: 5, stream: true });
    expect(mock.stats.lastBody?.messages).toBeUndefined();
    if (!(await page.getByTestId("look-inside").isVisible()))
      await page.getByTestId("look-inside-toggle").click();
    await page.getByRole("tab", { name: "Tokens" }).click();
    expect(await page.getByTestId("token-stream").locator("button").count()).toBeGreaterThan(20);
    await page.getByLabel("Mode", { exact: true }).selectOption("chat");
    await page.getByRole("button", { name: "Clear" }).click();
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

describe.skipIf(!haveChromium)(
  "chat page with the real @typeformer/serve and an untrained tiny model",
  () => {
    let ctx: BrowserContext;
    let page: Page;
    let profile: string;
    let modelDir: string;
    let ui: ChatUiServer;
    let running: RunningServer;
    let loaded: LoadedModel;
    const pageErrors: string[] = [];

    beforeAll(async () => {
      mkdirSync(ARTIFACTS, { recursive: true });
      await ensureChatAppBuilt();
      await initBackend({ backend: "wasm" });
      modelDir = mkdtempSync(join(tmpdir(), "typeformer-chat-model-"));
      await createDemoModelDir(modelDir, { hiddenSize: 32, numLayers: 2, numHeads: 2, maxPositions: 512 });
      loaded = await loadModelDir(modelDir, { id: "tiny" });
      running = await listen(
        createServer({ models: [{ id: loaded.id, model: loaded.model, tokenizer: loaded.tokenizer }] }),
        {
          port: 0,
        },
      );
      ui = await startChatUiServer({ apiBase: running.url });
      profile = mkdtempSync(join(tmpdir(), "typeformer-chat-e2e-"));
      ({ ctx, page } = await launch(profile));
      page.on("pageerror", (e) => pageErrors.push(e.message));
      await page.goto(ui.url);
      await page.getByTestId("server-status").filter({ hasText: "connected" }).waitFor();
    });

    afterAll(async () => {
      await ctx?.close();
      await ui?.close();
      await running?.close({ graceMs: 0 });
      loaded?.dispose();
      if (profile) rmSync(profile, { recursive: true, force: true });
      if (modelDir) rmSync(modelDir, { recursive: true, force: true });
    });

    it("streams, shows logprobs and real attention, stops mid-stream, and leaks no tensors", async () => {
      expect(await page.getByLabel("Model", { exact: true }).inputValue()).toBe("tiny");
      await page.getByLabel("Max tokens value").fill("120");
      await page.getByLabel("Max tokens value").press("Enter");
      await page.getByLabel("Seed", { exact: true }).fill("7");
      await page.getByLabel("Message", { exact: true }).fill("Hello, model.");
      await page.keyboard.press("Enter");
      await page.getByTestId("stop").waitFor({ state: "visible" });
      expectGrowth(await replyLengthsUntilDone(page));
      await page.getByTestId("send").waitFor({ state: "visible", timeout: 30_000 });
      expect(await page.getByTestId("reply-error").count()).toBe(0);
      expect(["done", "hit max tokens"]).toContain(
        await page.getByTestId("finish-reason").last().textContent(),
      );

      await page.getByTestId("look-inside-toggle").click();
      const chips = page.getByTestId("token-stream").locator("button");
      expect(await chips.count()).toBeGreaterThan(0);
      await chips.first().hover();
      await expect.poll(() => page.getByTestId("token-detail").textContent()).toMatch(/picked/i);
      await page.getByRole("tab", { name: "Attention" }).click();
      await page.getByTestId("heatmap").waitFor({ state: "visible", timeout: 20_000 });
      expect(await page.getByLabel("Layer", { exact: true }).locator("option").count()).toBe(2);
      expect(await page.getByLabel("Head", { exact: true }).locator("option").count()).toBe(3); // average + 2 heads
      await page.screenshot({ path: join(ARTIFACTS, "10-real-server-attention.png") });

      // stop mid-stream: the server's engine drops the sequence and frees its tensors (baseline taken once
      // warm: the first requests may build caches that live as long as the model)
      const engine = running.server.engines.get("tiny")!;
      await expect.poll(() => engine.activeCount + engine.queuedCount).toBe(0);
      const tensorsBefore = tf.memory().numTensors;
      await page.getByLabel("Max tokens value").fill("400");
      await page.getByLabel("Max tokens value").press("Enter");
      await page.getByLabel("Message", { exact: true }).fill("Now a long one.");
      await page.keyboard.press("Enter");
      await page.getByTestId("stop").click();
      await expect.poll(() => page.getByTestId("finish-reason").last().textContent()).toBe("stopped");
      await expect.poll(() => engine.activeCount + engine.queuedCount, { timeout: 10_000 }).toBe(0);
      await page.screenshot({ path: join(ARTIFACTS, "11-real-server-stopped.png") });
      await expect.poll(() => tf.memory().numTensors, { timeout: 10_000 }).toBe(tensorsBefore);
      expect(pageErrors).toEqual([]);
    });
  },
);
