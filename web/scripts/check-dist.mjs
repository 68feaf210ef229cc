#!/usr/bin/env node
// `npm run check:dist`: rebuilds the page into a temporary directory and
// fails if it differs from the committed dist/ (which the gateway embeds at
// compile time). Fix with `npm run build` and commit dist/.

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { compareDirs } from "./compare-dirs.mjs";

const web = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = mkdtempSync(path.join(os.tmpdir(), "switchboard-dist-"));
try {
  const vite = path.join(web, "node_modules/vite/bin/vite.js");
  const run = spawnSync(process.execPath, [vite, "build", "--outDir", out, "--emptyOutDir", "--logLevel", "warn"], {
    cwd: web,
    stdio: "inherit",
  });
  if (run.status !== 0) process.exit(run.status ?? 1);
  const problems = compareDirs(out, path.join(web, "dist"));
  if (problems.length) {
    console.error("web/dist is stale (run `npm run build` and commit dist/):");
    for (const line of problems) console.error(`  ${line}`);
    process.exit(1);
  }
  console.log("web/dist matches a fresh build");
} finally {
  rmSync(out, { recursive: true, force: true });
}
