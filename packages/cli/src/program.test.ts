import { describe, expect, it } from "vitest";
import { buildProgram } from "./program.js";

describe("typeformer CLI", () => {
  it("every subcommand has a description and --help", () => {
    const program = buildProgram();
    expect(program.commands.length).toBeGreaterThan(0);
    for (const cmd of program.commands) {
      expect(cmd.description().length, cmd.name()).toBeGreaterThan(10);
      expect(cmd.helpInformation()).toContain("--help");
    }
  });
});
