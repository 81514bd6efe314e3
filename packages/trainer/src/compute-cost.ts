import { availableParallelism } from "node:os";
import { TypeformerError } from "@typeformer/core";

/**
 * What the energy and CO₂ estimate assumes. Every number is an assumption, shown next to the result;
 * override any of them per run or with environment variables (see {@link costAssumptionsFromEnv}).
 */
export interface CostAssumptions {
  /** "cpu": power = cores × wattsPerCore; "gpu": power = gpus × wattsPerGpu (host CPU not counted). */
  device: "cpu" | "gpu";
  /** Cores busy for the run (default: os.availableParallelism()). */
  cores: number;
  /** Average draw per busy core, watts (default 10: a ~200–250 W server CPU over 20–32 cores, memory included). */
  wattsPerCore: number;
  gpus: number;
  /** Average draw per GPU, watts (default 400: an A100 SXM's TDP; an H100 SXM is 700). */
  wattsPerGpu: number;
  /** Data-centre power usage effectiveness (default 1.5; Uptime Institute's 2023 survey average is ~1.58, hyperscalers ~1.1). */
  pue: number;
  /** Grid carbon intensity, gCO₂e per kWh (default 475: IEA world average; France ~60, Poland ~700). */
  gridGCo2PerKwh: number;
}

export const DEFAULT_COST_ASSUMPTIONS: Omit<CostAssumptions, "cores"> = {
  device: "cpu",
  wattsPerCore: 10,
  gpus: 1,
  wattsPerGpu: 400,
  pue: 1.5,
  gridGCo2PerKwh: 475,
};

export interface ComputeCostInput {
  parameters: number;
  /** Tokens processed (training: tokens seen). */
  tokens: number;
  /** FLOPs per token (`flopsPerToken` of @typeformer/models: 6·N + attention for training). */
  flopsPerToken: number;
  wallTimeSec: number;
}

export interface ComputeCost extends ComputeCostInput {
  flops: number;
  achievedFlopsPerSec: number;
  /** Average power assumed, watts (before PUE). */
  powerWatts: number;
  energyKwh: number;
  co2Grams: number;
  assumptions: CostAssumptions;
  /** How the numbers were computed, in words. */
  method: string;
}

/** FLOPs, achieved FLOP/s, energy (kWh) and CO₂ (g) of a run, with the assumptions used. */
export function computeCost(
  input: ComputeCostInput,
  assumptions: Partial<CostAssumptions> = {},
): ComputeCost {
  for (const k of ["parameters", "tokens", "flopsPerToken", "wallTimeSec"] as const) {
    const v = input[k];
    if (!(Number.isFinite(v) && v >= 0)) {
      throw new TypeformerError("INVALID_ARGUMENT", `${k} must be a finite number ≥ 0; received ${v}`, {
        [k]: v,
      });
    }
  }
  const a: CostAssumptions = { ...DEFAULT_COST_ASSUMPTIONS, cores: availableParallelism(), ...assumptions };
  const flops = input.flopsPerToken * input.tokens;
  const powerWatts = a.device === "gpu" ? a.gpus * a.wattsPerGpu : a.cores * a.wattsPerCore;
  const energyKwh = (powerWatts * a.pue * input.wallTimeSec) / 3.6e6;
  return {
    ...input,
    flops,
    achievedFlopsPerSec: input.wallTimeSec > 0 ? flops / input.wallTimeSec : 0,
    powerWatts,
    energyKwh,
    co2Grams: energyKwh * a.gridGCo2PerKwh,
    assumptions: a,
    method:
      "FLOPs = flopsPerToken × tokens (6·N per token for the weight matmuls, forward + backward, plus 12·L·C·T attention); " +
      `energy = ${a.device === "gpu" ? `${a.gpus} GPU × ${a.wattsPerGpu} W` : `${a.cores} cores × ${a.wattsPerCore} W`} × PUE ${a.pue} × wall time; ` +
      `CO₂ = energy × ${a.gridGCo2PerKwh} g/kWh. Power is an assumed average draw, not a measurement.`,
  };
}

/**
 * Assumption overrides from the environment: TYPEFORMER_COST_DEVICE (cpu|gpu), TYPEFORMER_CORES,
 * TYPEFORMER_WATTS_PER_CORE, TYPEFORMER_GPUS, TYPEFORMER_WATTS_PER_GPU, TYPEFORMER_PUE,
 * TYPEFORMER_GRID_G_PER_KWH.
 */
export function costAssumptionsFromEnv(
  env: Record<string, string | undefined> = process.env,
): Partial<CostAssumptions> {
  const out: Partial<CostAssumptions> = {};
  const num = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === "") return undefined;
    const n = Number(v);
    if (!(Number.isFinite(n) && n >= 0)) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        `${name} must be a number ≥ 0; received ${JSON.stringify(v)}`,
        {
          [name]: v,
        },
      );
    }
    return n;
  };
  const dev = env.TYPEFORMER_COST_DEVICE;
  if (dev === "cpu" || dev === "gpu") out.device = dev;
  else if (dev) {
    throw new TypeformerError(
      "INVALID_CONFIG",
      `TYPEFORMER_COST_DEVICE must be cpu or gpu; received ${JSON.stringify(dev)}`,
      {
        device: dev,
      },
    );
  }
  const map: [keyof CostAssumptions, string][] = [
    ["cores", "TYPEFORMER_CORES"],
    ["wattsPerCore", "TYPEFORMER_WATTS_PER_CORE"],
    ["gpus", "TYPEFORMER_GPUS"],
    ["wattsPerGpu", "TYPEFORMER_WATTS_PER_GPU"],
    ["pue", "TYPEFORMER_PUE"],
    ["gridGCo2PerKwh", "TYPEFORMER_GRID_G_PER_KWH"],
  ];
  for (const [k, name] of map) {
    const v = num(name);
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

function si(x: number, unit: string): string {
  const p = ["", "k", "M", "G", "T", "P", "E"];
  let i = 0;
  while (Math.abs(x) >= 1000 && i < p.length - 1) {
    x /= 1000;
    i++;
  }
  return `${x.toPrecision(3)} ${p[i]}${unit}`;
}

/** A markdown table of the cost with its assumptions (for run reports). */
export function formatComputeCost(c: ComputeCost): string {
  const a = c.assumptions;
  const rows: [string, string][] = [
    ["parameters", c.parameters.toLocaleString("en-US")],
    ["tokens", c.tokens.toLocaleString("en-US")],
    ["FLOPs per token", si(c.flopsPerToken, "FLOP")],
    ["training FLOPs", si(c.flops, "FLOP")],
    ["wall time", `${c.wallTimeSec.toFixed(1)} s`],
    ["achieved", si(c.achievedFlopsPerSec, "FLOP/s")],
    [
      "power (assumed)",
      a.device === "gpu"
        ? `${a.gpus} × ${a.wattsPerGpu} W per GPU`
        : `${a.cores} × ${a.wattsPerCore} W per core`,
    ],
    ["PUE (assumed)", String(a.pue)],
    ["energy", `${(c.energyKwh * 1000).toPrecision(3)} Wh`],
    ["grid intensity (assumed)", `${a.gridGCo2PerKwh} gCO₂e/kWh`],
    ["CO₂e", `${c.co2Grams.toPrecision(3)} g`],
  ];
  return `| quantity | value |\n|---|---|\n${rows.map(([k, v]) => `| ${k} | ${v} |`).join("\n")}\n\n${c.method}\n`;
}
