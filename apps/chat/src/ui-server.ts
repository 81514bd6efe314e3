import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { chatAppDistDir, readChatAppAsset } from "./assets.js";

export interface ChatUiServerOptions {
  /**
   * The OpenAI-compatible server to forward `/v1/*`, `/health` and `/metrics` to (e.g.
   * `http://127.0.0.1:8080`). The page then talks to its own origin: no CORS needed. Omit to serve the
   * page alone (it can still be pointed at another server in its settings or with `?api=`).
   */
  apiBase?: string;
  port?: number;
  host?: string;
  distDir?: string;
}

export interface ChatUiServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const PROXIED = /^\/(v1\/|v1$|health$|metrics$)/;

function proxy(req: IncomingMessage, res: ServerResponse, apiBase: string): void {
  const target = new URL(req.url ?? "/", apiBase.endsWith("/") ? apiBase : `${apiBase}/`);
  const base = new URL(apiBase);
  // keep a path prefix in apiBase, e.g. http://host/prefix + /v1/models
  target.pathname = base.pathname.replace(/\/+$/, "") + (req.url ?? "/").split("?")[0];
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  const headers = { ...req.headers, host: target.host };
  const upstream = send(target, { method: req.method, headers }, (up) => {
    res.writeHead(up.statusCode ?? 502, up.headers);
    if (typeof res.flushHeaders === "function") res.flushHeaders();
    up.pipe(res);
  });
  upstream.on("error", (err) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(502, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        error: {
          message: `the chat page's server cannot reach the model server at ${apiBase}: ${err.message}`,
          type: "upstream_error",
          param: null,
          code: "bad_gateway",
        },
      }),
    );
  });
  // the browser went away (stop button, closed tab): drop the upstream request so generation is cancelled
  res.on("close", () => {
    if (!res.writableFinished) upstream.destroy();
  });
  req.pipe(upstream);
}

/**
 * Serves the built chat page at `/` and forwards the API to `apiBase`, so one URL gives the whole product.
 * Build the page first with `ensureChatAppBuilt()`.
 */
export async function startChatUiServer(opts: ChatUiServerOptions = {}): Promise<ChatUiServer> {
  const distDir = opts.distDir ?? chatAppDistDir();
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (opts.apiBase && PROXIED.test(path)) {
      proxy(req, res, opts.apiBase);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    readChatAppAsset(path, distDir).then(
      (asset) => {
        if (!asset) {
          res.writeHead(404, { "content-type": "text/plain" }).end("not found");
          return;
        }
        res.writeHead(200, {
          "content-type": asset.contentType,
          "cache-control": asset.cacheControl,
          "content-length": asset.body.byteLength,
          "x-content-type-options": "nosniff",
        });
        res.end(req.method === "HEAD" ? undefined : asset.body);
      },
      (err: Error) => {
        res.writeHead(500, { "content-type": "text/plain" }).end(err.message);
      },
    );
  });
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(opts.port ?? 0, host, () => ok());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}/`,
    port,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
