#!/usr/bin/env node
// `npm run test:browser`: the Playwright suite against a cluster of its own.
// Builds the switchboard binary and sb only if one is missing ($SWITCHBOARD_BIN
// or target/debug/switchboard, sb beside it); the tests check that it embeds
// this web/dist.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const web = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repo = path.resolve(web, "..");
const bin = process.env.SWITCHBOARD_BIN ?? path.join(repo, "target/debug/switchboard");

// The tests run `sb` (their operator) from beside the server binary.
const sb = path.join(path.dirname(bin), "sb");
if (!existsSync(bin) || !existsSync(sb)) {
  if (process.env.SWITCHBOARD_BIN) {
    console.error(`SWITCHBOARD_BIN=${bin}, or sb beside it, does not exist`);
    process.exit(1);
  }
  console.log("building the switchboard binary and sb (cargo build -p switchboard-server -p switchboard-cli)…");
  const build = spawnSync("cargo", ["build", "-p", "switchboard-server", "-p", "switchboard-cli"], { cwd: repo, stdio: "inherit" });
  if (build.status !== 0) process.exit(build.status ?? 1);
}

const playwright = path.join(web, "node_modules/@playwright/test/cli.js");
const run = spawnSync(process.execPath, [playwright, "test", ...process.argv.slice(2)], {
  cwd: web,
  stdio: "inherit",
  env: { ...process.env, SWITCHBOARD_BIN: bin },
});
process.exit(run.status ?? 1);
