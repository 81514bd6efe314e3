import type { Command } from "commander";
import { registerInfo } from "./info.js";

/** Every subcommand registers itself here: one line per command module. */
export const commands: Array<(program: Command) => void> = [registerInfo];
