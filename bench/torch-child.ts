/** Talks to bench/pytorch/gpt_bench.py, a persistent PyTorch process, one JSON line per command. */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

export class TorchChild {
  private constructor(
    private proc: ChildProcessWithoutNullStreams,
    private lines: AsyncIterator<string>,
    readonly info: { torch: string; threads: number },
  ) {}

  /** Starts the PyTorch side, or returns the reason it cannot run (no python3/torch). */
  static async start(config: object, threads = 2): Promise<TorchChild | string> {
    const python = process.env.TYPEFORMER_TORCH_PYTHON ?? "/usr/bin/python3";
    const proc = spawn(
      python,
      [path.join(here, "pytorch/gpt_bench.py"), JSON.stringify({ ...config, threads })],
      {
        env: { ...process.env, OPENBLAS_NUM_THREADS: "1", OMP_NUM_THREADS: String(threads) },
      },
    );
    let stderr = "";
    proc.stderr.on("data", (d) => {
      stderr += d;
    });
    const failed = new Promise<string>((resolve) => {
      proc.on("error", (e) => resolve(`cannot run ${python}: ${e.message}`));
      proc.on("exit", (code) => resolve(`${python} exited (${code}): ${stderr.trim().split("\n").pop()}`));
    });
    const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
    const first = await Promise.race([lines.next().then((r) => r.value as string | undefined), failed]);
    if (typeof first !== "string" || !first.startsWith("{")) {
      proc.kill();
      return `PyTorch side skipped: ${first ?? "no output"} (needs Debian python3-torch; set TYPEFORMER_TORCH_PYTHON)`;
    }
    return new TorchChild(proc, lines, JSON.parse(first));
  }

  async call<T>(cmd: object): Promise<T> {
    this.proc.stdin.write(`${JSON.stringify(cmd)}\n`);
    const r = await this.lines.next();
    if (r.done) throw new Error("PyTorch side exited");
    return JSON.parse(r.value) as T;
  }

  close(): void {
    this.proc.stdin.write('{"cmd":"quit"}\n');
    this.proc.stdin.end();
  }
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
