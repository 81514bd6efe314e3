import { tf } from "@typeformer/core";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { EngineObserver, GenerationEngine } from "./engine.js";

/** Prometheus metrics of one server (its own registry: several servers in one process never clash). */
export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"route" | "status">;
  readonly promptTokens: Counter<"model">;
  readonly completionTokens: Counter<"model">;
  readonly ttft: Histogram<"model">;
  readonly interToken: Histogram<"model">;
  readonly batchSize: Histogram<"model">;
  private readonly engines = new Map<string, GenerationEngine>();

  constructor() {
    const registers = [this.registry];
    this.requests = new Counter({
      name: "typeformer_http_requests_total",
      help: "HTTP requests by route and status code",
      labelNames: ["route", "status"],
      registers,
    });
    this.promptTokens = new Counter({
      name: "typeformer_prompt_tokens_total",
      help: "Prompt tokens processed",
      labelNames: ["model"],
      registers,
    });
    this.completionTokens = new Counter({
      name: "typeformer_completion_tokens_total",
      help: "Tokens generated",
      labelNames: ["model"],
      registers,
    });
    this.ttft = new Histogram({
      name: "typeformer_time_to_first_token_seconds",
      help: "Time from request submission to its first generated token",
      labelNames: ["model"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.interToken = new Histogram({
      name: "typeformer_inter_token_latency_seconds",
      help: "Time between consecutive generated tokens of one sequence",
      labelNames: ["model"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    this.batchSize = new Histogram({
      name: "typeformer_decode_batch_size",
      help: "Sequences decoded together per decode step",
      labelNames: ["model"],
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    });
    const engines = this.engines;
    new Gauge({
      name: "typeformer_queue_depth",
      help: "Requests waiting for a batch slot",
      labelNames: ["model"],
      registers,
      collect() {
        for (const [model, e] of engines) this.set({ model }, e.queuedCount);
      },
    });
    new Gauge({
      name: "typeformer_active_sequences",
      help: "Sequences in the running decode batch",
      labelNames: ["model"],
      registers,
      collect() {
        for (const [model, e] of engines) this.set({ model }, e.activeCount);
      },
    });
    new Gauge({
      name: "typeformer_tf_tensors",
      help: "tf.memory().numTensors",
      registers,
      collect() {
        this.set(tf.memory().numTensors);
      },
    });
    new Gauge({
      name: "typeformer_tf_bytes",
      help: "tf.memory().numBytes",
      registers,
      collect() {
        this.set(tf.memory().numBytes);
      },
    });
  }

  /** An engine observer that feeds this registry, labelled with the model id. */
  observer(model: string): EngineObserver {
    return {
      onFirstToken: (ms) => this.ttft.observe({ model }, ms / 1000),
      onInterToken: (ms) => this.interToken.observe({ model }, ms / 1000),
      onStep: (b) => this.batchSize.observe({ model }, b),
      onFinish: (r) => {
        this.promptTokens.inc({ model }, r.promptTokens);
        this.completionTokens.inc({ model }, r.completionTokens);
      },
    };
  }

  /** Registers an engine for the queue-depth and active-sequence gauges. */
  track(model: string, engine: GenerationEngine): void {
    this.engines.set(model, engine);
  }
}
