/**
 * The fine-tuning dashboard server: serves the page (web/), uPlot from node_modules (no CDN), the run's
 * history at /api/state and live events at /events (server-sent events). Bound to 127.0.0.1.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";

/** What the page draws. `step` carries the trainer's StepMetrics. */
export type DashboardEvent =
  | { type: "start"; info: Record<string, unknown> }
  | {
      type: "step";
      step: number;
      loss: number;
      lr: number;
      tokensPerSec: number;
      valLoss?: number;
      gradNorm?: number;
    }
  | { type: "samples"; when: "before" | "after"; samples: { prompt: string; output: string }[] }
  | { type: "done"; report: Record<string, unknown> }
  | { type: "error"; message: string };

export interface Dashboard {
  readonly url: string;
  readonly port: number;
  /** Records an event and pushes it to every open page. */
  publish(e: DashboardEvent): void;
  /** Events so far (what /api/state returns). */
  readonly events: readonly DashboardEvent[];
  close(): Promise<void>;
}

export interface DashboardOptions {
  /** 0 = any free port (default). */
  port?: number;
  title?: string;
}

function webDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(here, "..", "web"); // same from src/ (tsx, tests) and dist/
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

export async function startDashboard(opts: DashboardOptions = {}): Promise<Dashboard> {
  const require = createRequire(import.meta.url);
  const uplotDir = path.dirname(require.resolve("uplot/dist/uPlot.iife.min.js"));
  const files: Record<string, string> = {
    "/": path.join(webDir(), "index.html"),
    "/dashboard.js": path.join(webDir(), "dashboard.js"),
    "/dashboard.css": path.join(webDir(), "dashboard.css"),
    "/vendor/uPlot.iife.min.js": path.join(uplotDir, "uPlot.iife.min.js"),
    "/vendor/uPlot.min.css": path.join(uplotDir, "uPlot.min.css"),
  };
  const events: DashboardEvent[] = [];
  const listeners = new Set<(e: DashboardEvent, id: number) => void>();
  const app = new Hono();
  for (const [route, file] of Object.entries(files)) {
    app.get(route, async (c) => {
      let body = await readFile(file, "utf8");
      if (route === "/")
        body = body.replaceAll("{{TITLE}}", (opts.title ?? "Typeformer fine-tuning").replace(/[<>&]/g, ""));
      return c.body(body, 200, {
        "content-type": TYPES[path.extname(file) || ".html"],
        "cache-control": "no-store",
      });
    });
  }
  app.get("/api/state", (c) => c.json({ events }));
  app.get("/events", (c) =>
    streamSSE(c, async (stream) => {
      const queue: { e: DashboardEvent; id: number }[] = [];
      let wake: (() => void) | null = null;
      const l = (e: DashboardEvent, id: number) => {
        queue.push({ e, id });
        wake?.();
      };
      listeners.add(l);
      let open = true;
      stream.onAbort(() => {
        open = false;
        listeners.delete(l);
        wake?.();
      });
      // start after the history the page fetched (Last-Event-ID, or ?after=N)
      const after = Number(c.req.header("last-event-id") ?? c.req.query("after") ?? events.length);
      for (let i = after; i < events.length; i++) queue.push({ e: events[i], id: i + 1 });
      while (open) {
        while (queue.length > 0) {
          const { e, id } = queue.shift()!;
          await stream.writeSSE({ data: JSON.stringify(e), id: String(id) });
        }
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 15_000); // keep-alive
        });
        wake = null;
        if (open && queue.length === 0) await stream.write(": keep-alive\n\n");
      }
    }),
  );
  const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: opts.port ?? 0 });
  await new Promise<void>((resolve, reject) => {
    server.once("listening", () => resolve());
    server.once("error", reject);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    events,
    publish(e) {
      events.push(e);
      for (const l of listeners) l(e, events.length);
    },
    close: () =>
      new Promise<void>((resolve) => {
        listeners.clear();
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
