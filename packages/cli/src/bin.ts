#!/usr/bin/env node
import { runCli } from "./program.js";

runCli(process.argv).then(
  (code) => {
    // a command's action may already have set a failing exit code; never overwrite it with success
    if (code !== 0 || process.exitCode === undefined) process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`typeformer: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
