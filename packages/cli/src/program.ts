import { isTypeformerError } from "@typeformer/core";
import { Command, CommanderError } from "commander";
import { commands } from "./commands/index.js";

/** Builds the `typeformer` program with every subcommand registered. */
export function buildProgram(): Command {
  const program = new Command("typeformer")
    .description("Build, train, fine-tune, evaluate and serve transformer language models in TypeScript.")
    .version("0.1.0")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  for (const register of commands) register(program);
  return program;
}

/** Runs the CLI; returns the process exit code. Typed errors print their message and code, no stack. */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (isTypeformerError(err)) {
      process.stderr.write(`typeformer: ${err.message} [${err.code}]\n`);
      return 2;
    }
    throw err;
  }
}
