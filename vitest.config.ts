import { defineConfig } from "vitest/config";

// Tests import workspace packages from source (the "source" export condition), never from dist.
export default defineConfig({
  resolve: { conditions: ["source", "import", "module", "default"] },
  ssr: { resolve: { conditions: ["source", "import", "module", "default"] } },
  test: {
    include: ["packages/*/src/**/*.test.ts", "apps/*/src/**/*.test.ts", "apps/*/test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // expect.poll waits only as long as needed; its 1 s default fails on a loaded 2-core CI machine
    expect: { poll: { timeout: 15_000 } },
    pool: "forks",
    maxWorkers: 2,
  },
});
