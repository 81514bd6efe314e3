/**
 * `typeformer chat <url>` in a real pseudo-terminal (tmux): a reply streams in, Ctrl-C stops a reply,
 * /reset and /system work, Ctrl-D exits cleanly.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatAppRoot } from "../assets.js";
import { createDemoModelDir } from "../demo-model.js";
import { type MockServer, startMockOpenAI } from "../testing/mock-openai.js";

const haveTmux = spawnSync("tmux", ["-V"]).status === 0;
if (!haveTmux) console.warn("[chat terminal test] skipped: tmux is not installed (apt-get install tmux)");

const REPO = resolve(chatAppRoot(), "..", "..");
const SOCKET = `typeformer-chat-test-${process.pid}`;
const SESSION = "chat";

const tmux = (...args: string[]) => execFileSync("tmux", ["-L", SOCKET, ...args], { encoding: "utf8" });
const screen = () => tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", SESSION);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred: (s: string) => boolean, what: string, timeoutMs = 30_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  let s = "";
  while (Date.now() < end) {
    s = screen();
    if (pred(s)) return s;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}; the terminal shows:\n${s}`);
}

describe.skipIf(!haveTmux)("typeformer chat in a terminal", () => {
  let mock: MockServer;

  beforeAll(async () => {
    mock = await startMockOpenAI({ tokenDelayMs: 60 });
    const cmd = [
      "node_modules/.bin/tsx",
      "--conditions=source",
      "packages/cli/src/bin.ts",
      "chat",
      mock.url,
      "--temperature",
      "0.7",
      "--seed",
      "3",
      "--no-color",
    ].join(" ");
    // the shell prints the exit status after the CLI returns, then waits so the pane can be read
    tmux(
      "new-session",
      "-d",
      "-s",
      SESSION,
      "-x",
      "140",
      "-y",
      "40",
      "-c",
      REPO,
      `${cmd}; echo "EXIT=$?"; sleep 30`,
    );
    await waitFor((s) => s.includes("you ›"), "the prompt");
  });

  afterAll(async () => {
    spawnSync("tmux", ["-L", SOCKET, "kill-server"]);
    await mock?.close();
  });

  it("streams a reply, stops one with Ctrl-C, handles /system and /reset, exits on Ctrl-D", async () => {
    tmux("send-keys", "-t", SESSION, "Tell me a story", "Enter");
    // the reply grows across several looks at the screen
    const lengths: number[] = [];
    const end = Date.now() + 20_000;
    while (Date.now() < end) {
      const m = /bot › (.*)/.exec(screen());
      const n = m ? m[1].trimEnd().length : 0;
      if (n > 0 && n !== lengths.at(-1)) lengths.push(n);
      if (screen().includes("tokens,")) break;
      await sleep(120);
    }
    expect(lengths.length, `reply lengths seen: ${lengths.join(",")}`).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < lengths.length; i++) expect(lengths[i]).toBeGreaterThan(lengths[i - 1]);
    await waitFor((s) => /\(65 tokens, [\d.]+ tok\/s\)/.test(s), "the end of the reply");
    expect(screen()).toContain("Call me Ishmael. Some years ago");
    expect(mock.stats.lastBody).toMatchObject({ temperature: 0.7, seed: 3, stream: true });

    // Ctrl-C mid-reply stops it (and the server sees the disconnect), the prompt comes back
    const cancelled = mock.stats.cancelled;
    tmux("send-keys", "-t", SESSION, "Another one", "Enter");
    await waitFor(
      (s) => (s.match(/bot › /g) ?? []).length === 2 && /bot › Call me/.test(s.split("Another one")[1] ?? ""),
      "the second reply",
    );
    tmux("send-keys", "-t", SESSION, "C-c");
    await waitFor((s) => s.includes("(stopped)"), "(stopped)");
    await expect.poll(() => mock.stats.cancelled).toBe(cancelled + 1);

    // /system and /reset change what is sent
    tmux("send-keys", "-t", SESSION, "/system You are terse.", "Enter");
    await waitFor((s) => s.includes("system prompt set"), "the /system confirmation");
    tmux("send-keys", "-t", SESSION, "/set max_tokens 3", "Enter");
    await waitFor((s) => s.includes("(max_tokens = 3)"), "the /set confirmation");
    tmux("send-keys", "-t", SESSION, "Hi", "Enter");
    await waitFor((s) => s.includes("(max tokens reached, 3 tokens"), "the short reply");
    expect(mock.stats.lastBody?.messages).toEqual([
      { role: "system", content: "You are terse." },
      { role: "user", content: "Hi" },
    ]);
    tmux("send-keys", "-t", SESSION, "/reset", "Enter");
    await waitFor((s) => s.includes("(conversation cleared)"), "the /reset confirmation");

    // Ctrl-D at the prompt: a clean exit with status 0
    tmux("send-keys", "-t", SESSION, "C-d");
    const final = await waitFor((s) => s.includes("EXIT="), "the exit");
    expect(final).toContain("bye");
    expect(final).toContain("EXIT=0");
  });
});

describe("typeformer chat <model-dir>", () => {
  it("serves the directory in-process and answers piped input to the end, then exits 0", async () => {
    const dir = mkdtempSync(join(tmpdir(), "typeformer-chat-dir-"));
    try {
      await createDemoModelDir(dir, { hiddenSize: 32, numLayers: 1, numHeads: 2, maxPositions: 256 });
      const child = spawn(
        "node_modules/.bin/tsx",
        [
          "--conditions=source",
          "packages/cli/src/bin.ts",
          "chat",
          dir,
          "--max-tokens",
          "6",
          "--seed",
          "1",
          "--no-color",
        ],
        { cwd: REPO, stdio: ["pipe", "pipe", "pipe"] },
      );
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
      });
      child.stderr.on("data", (d) => {
        out += d;
      });
      child.stdin.end("hello\n/system be brief\nagain\n");
      const code = await new Promise<number | null>((ok) => child.on("close", ok));
      expect(out, out).toMatch(/served at http:\/\/127\.0\.0\.1:\d+\/v1/);
      expect((out.match(/bot › /g) ?? []).length, out).toBe(2);
      expect(out).toMatch(/\((max tokens reached, )?\d+ tokens/);
      expect(out).toContain("(system prompt set; conversation cleared)");
      expect(out).toContain("bye");
      expect(code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
