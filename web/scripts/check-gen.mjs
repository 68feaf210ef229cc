#!/usr/bin/env node
// `npm run check:gen`: regenerates the TypeScript client from proto/ into a
// temporary directory and fails if it differs from the committed src/gen
// (run `npm run gen` and commit the result).

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { compareDirs } from "./compare-dirs.mjs";

const web = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = mkdtempSync(path.join(os.tmpdir(), "switchboard-gen-"));
try {
  const bin = path.join(web, "node_modules/.bin");
  const run = spawnSync(path.join(bin, "buf"), ["generate", "--template", "buf.gen.yaml", "--output", out], {
    cwd: web,
    stdio: "inherit",
    // buf runs the protoc-gen-es plugin from PATH.
    env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ""}` },
  });
  if (run.status !== 0) process.exit(run.status ?? 1);
  const problems = compareDirs(path.join(out, "src/gen"), path.join(web, "src/gen"));
  if (problems.length) {
    console.error("src/gen is stale against proto/ (run `npm run gen` and commit):");
    for (const line of problems) console.error(`  ${line}`);
    process.exit(1);
  }
  console.log("src/gen matches proto/");
} finally {
  rmSync(out, { recursive: true, force: true });
}
