import { GEMM_WASM_RELAXED_SHARED_BASE64, GEMM_WASM_SHARED_BASE64 } from "./gemm-binary.js";
import { decodeBase64, type WasmKernelVariant } from "./instance.js";

/**
 * A second GEMM thread for Node. tf.js's wasm heap is not shared memory, so the worker works on a
 * shared `WebAssembly.Memory` of its own: the main thread copies the operands there, the worker computes
 * one half of the output (half the batch, or half the rows) while the main thread computes the other
 * half in place on the tf.js heap, then the worker's half is copied back. Synchronisation is one
 * `Atomics.notify`/`Atomics.wait` pair per product.
 */

// Control block (Int32): 0 job sequence (-1 = stop), 1 last job done, 2 ready, 3 job kind, 4.. arguments.
const SEQ = 0;
const DONE = 1;
const READY = 2;
const KIND = 3;
const ARGS = 4;

const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { module, memory, control, scratch } = workerData;
const inst = new WebAssembly.Instance(module, { env: { memory } });
const ctl = new Int32Array(control);
Atomics.store(ctl, ${READY}, 1);
let seq = 0;
for (;;) {
  Atomics.wait(ctl, ${SEQ}, seq);
  seq = Atomics.load(ctl, ${SEQ});
  if (seq < 0) break;
  const a = ctl.subarray(${ARGS}, ${ARGS} + 16);
  const kind = ctl[${KIND}];
  if (kind === 0) inst.exports.bmm(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], scratch);
  else if (kind === 1) inst.exports.gemmRows(a[0], a[1], a[2], a[6], a[7], a[8], a[9], a[10], a[11], a[12], scratch);
  else {
    // flash attention: a[0] = descriptor/scratch address, a[1] = the scale's float32 bits
    const scale = new Float32Array(new Int32Array([a[1]]).buffer)[0];
    if (kind === 2) inst.exports.flashForward(a[0], scale);
    else inst.exports.flashBackward(a[0], scale);
  }
  Atomics.store(ctl, ${DONE}, seq);
  Atomics.notify(ctl, ${DONE});
}
`;

interface WorkerLike {
  unref(): void;
  terminate(): Promise<number>;
  on(event: "error", fn: (e: Error) => void): void;
}

export class GemmThread {
  private seq = 0;
  /** Jobs posted so far. */
  get jobs(): number {
    return this.seq;
  }
  private failed = false;
  private constructor(
    private readonly worker: WorkerLike,
    readonly memory: WebAssembly.Memory,
    private readonly ctl: Int32Array,
    /** First byte past the worker's scratch block: where operands go. */
    readonly dataBase: number,
    readonly variant: WasmKernelVariant,
  ) {
    worker.on("error", () => {
      this.failed = true;
    });
  }

  /** Starts the worker (Node only); undefined where worker threads or shared memory are unavailable. */
  static start(variant: WasmKernelVariant, scratchBytes: number): GemmThread | undefined {
    const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
    const wt = proc?.getBuiltinModule?.("node:worker_threads") as
      | { Worker: new (src: string, opts: object) => WorkerLike }
      | undefined;
    if (!wt || typeof SharedArrayBuffer === "undefined") return undefined;
    const bytes = decodeBase64(
      variant === "relaxed-simd" ? GEMM_WASM_RELAXED_SHARED_BASE64 : GEMM_WASM_SHARED_BASE64,
    );
    let module: WebAssembly.Module;
    let memory: WebAssembly.Memory;
    try {
      module = new WebAssembly.Module(bytes);
      memory = new WebAssembly.Memory({
        initial: Math.ceil(scratchBytes / 65536) + 64,
        maximum: 65536,
        shared: true,
      });
    } catch {
      return undefined;
    }
    const control = new SharedArrayBuffer(64 * 4);
    const scratch = 0;
    const worker = new wt.Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { module, memory, control, scratch },
    });
    worker.unref();
    const dataBase = (scratchBytes + 63) & ~63;
    return new GemmThread(worker, memory, new Int32Array(control), dataBase, variant);
  }

  /** Whether the worker is up and can take a job now. */
  get ready(): boolean {
    return !this.failed && Atomics.load(this.ctl, READY) === 1;
  }

  /** Grows the shared memory to hold `bytes` past `dataBase`; returns a fresh byte view. */
  reserve(bytes: number): Uint8Array {
    const need = this.dataBase + bytes;
    const have = this.memory.buffer.byteLength;
    if (need > have) this.memory.grow(Math.ceil((need - have) / 65536));
    return new Uint8Array(this.memory.buffer);
  }

  /**
   * Posts a job: kind 0 = bmm(args[0..10]), 1 = gemmRows(a, b, c, _, _, _, M, N, K, tA, tB, m0, m1),
   * 2 / 3 = flashForward / flashBackward(descriptor, float32 bits of the scale).
   */
  post(kind: 0 | 1 | 2 | 3, args: number[]): void {
    this.ctl[KIND] = kind;
    for (let i = 0; i < args.length; i++) this.ctl[ARGS + i] = args[i] | 0;
    this.seq++;
    Atomics.store(this.ctl, SEQ, this.seq);
    Atomics.notify(this.ctl, SEQ);
  }

  /** Blocks until the last posted job is done. */
  wait(): void {
    for (;;) {
      if (this.failed) throw new Error("Typeformer kernel worker thread failed");
      const done = Atomics.load(this.ctl, DONE);
      if (done === this.seq) return;
      Atomics.wait(this.ctl, DONE, done, 1000);
    }
  }

  stop(): void {
    Atomics.store(this.ctl, SEQ, -1);
    Atomics.notify(this.ctl, SEQ);
    void this.worker.terminate();
  }
}
