export { commands } from "./commands/index.js";
export { buildProgram, runCli } from "./program.js";
