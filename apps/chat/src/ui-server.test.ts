import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatAppRoot, ensureChatAppBuilt, readChatAppAsset } from "./assets.js";
import { type MockServer, startMockOpenAI } from "./testing/mock-openai.js";
import { startChatUiServer } from "./ui-server.js";

describe("readChatAppAsset", () => {
  const dir = mkdtempSync(join(tmpdir(), "chat-assets-"));
  mkdirSync(join(dir, "assets"));
  writeFileSync(join(dir, "index.html"), "<!doctype html><title>x</title>");
  writeFileSync(join(dir, "assets", "app-1234.js"), "console.log(1)");
  writeFileSync(join(tmpdir(), "chat-secret.txt"), "secret");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("serves index.html at / and for client routes, hashed assets with a long cache", async () => {
    const root = await readChatAppAsset("/", dir);
    expect(root?.contentType).toBe("text/html; charset=utf-8");
    expect(new TextDecoder().decode(root?.body)).toContain("<title>x</title>");
    expect(root?.cacheControl).toBe("no-cache");
    expect((await readChatAppAsset("/some/route", dir))?.contentType).toBe("text/html; charset=utf-8");
    const js = await readChatAppAsset("/assets/app-1234.js?v=1", dir);
    expect(js?.contentType).toBe("text/javascript; charset=utf-8");
    expect(js?.cacheControl).toContain("immutable");
    expect(await readChatAppAsset("/assets/missing.js", dir)).toBeUndefined();
  });

  it("never reads outside the folder", async () => {
    for (const p of [
      "/../chat-secret.txt",
      "/..%2fchat-secret.txt",
      "/%2e%2e/chat-secret.txt",
      "/assets/../../chat-secret.txt",
    ])
      expect(await readChatAppAsset(p, dir), p).toBeUndefined();
    expect(await readChatAppAsset("/%E0%A4%A", dir)).toBeUndefined(); // malformed escape
  });
});

describe("the page server", () => {
  let mock: MockServer;
  beforeAll(async () => {
    await ensureChatAppBuilt();
    mock = await startMockOpenAI({ tokenDelayMs: 1 });
  });
  afterAll(() => mock.close());

  it("serves the built page and forwards the API, with 502 in OpenAI's shape when the API is down", async () => {
    const ui = await startChatUiServer({ apiBase: mock.url });
    try {
      const html = await (await fetch(ui.url)).text();
      expect(html).toMatch(/<title>Typeformer Chat<\/title>/);
      const js = html.match(/src="\.\/(assets\/[^"]+\.js)"/)?.[1];
      expect(js).toBeDefined();
      const asset = await fetch(new URL(js!, ui.url));
      expect(asset.headers.get("content-type")).toContain("javascript");
      const models = (await (await fetch(new URL("/v1/models", ui.url))).json()) as {
        data: { id: string }[];
      };
      expect(models.data[0].id).toBe("mock-moby");
      const stream = await fetch(new URL("/v1/chat/completions", ui.url), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "m",
          messages: [{ role: "user", content: "x" }],
          stream: true,
          max_tokens: 2,
        }),
      });
      expect(stream.headers.get("content-type")).toBe("text/event-stream");
      expect(await stream.text()).toMatch(/"content":"Call".*\[DONE\]/s);
    } finally {
      await ui.close();
    }
    const orphan = await startChatUiServer({ apiBase: "http://127.0.0.1:9" });
    try {
      const res = await fetch(new URL("/v1/models", orphan.url));
      expect(res.status).toBe(502);
      const body = (await res.json()) as { error: { message: string; code: string } };
      expect(body.error.code).toBe("bad_gateway");
      expect(body.error.message).toContain("http://127.0.0.1:9");
    } finally {
      await orphan.close();
    }
  });

  it("`typeformer chat-ui <url>` prints the page URL and stops cleanly on SIGTERM", async () => {
    const repo = resolve(chatAppRoot(), "..", "..");
    const child = spawn(
      "node_modules/.bin/tsx",
      ["--conditions=source", "packages/cli/src/bin.ts", "chat-ui", mock.url, "--port", "0"],
      { cwd: repo, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    const url = await new Promise<string>((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`no URL printed:\n${out}`)), 30_000);
      child.stdout.on("data", () => {
        const m = /Open (http:\/\/\S+) in your browser/.exec(out);
        if (m) {
          clearTimeout(t);
          ok(m[1]);
        }
      });
    });
    const res = await fetch(new URL("/v1/models", url));
    expect(res.status).toBe(200);
    expect(await (await fetch(url)).text()).toContain("Typeformer Chat");
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((ok) => child.on("close", ok));
    expect(code, out).toBe(0);
  });
});
