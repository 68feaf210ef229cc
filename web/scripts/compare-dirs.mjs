// Compares two directory trees file by file; used by check:gen and check:dist.

import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

function files(root, dir = root, out = []) {
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) files(root, full, out);
    else out.push(path.relative(root, full));
  }
  return out;
}

/** Returns one line per difference (empty when the trees are the same). */
export function compareDirs(expected, actual) {
  const problems = [];
  let want = [];
  let have = [];
  try {
    want = files(expected);
  } catch {
    return [`${expected} is missing`];
  }
  try {
    have = files(actual);
  } catch {
    return [`${actual} is missing`];
  }
  const haveSet = new Set(have);
  const wantSet = new Set(want);
  for (const file of want) {
    if (!haveSet.has(file)) problems.push(`missing: ${file}`);
    else if (!readFileSync(path.join(expected, file)).equals(readFileSync(path.join(actual, file)))) {
      problems.push(`differs: ${file}`);
    }
  }
  for (const file of have) if (!wantSet.has(file)) problems.push(`not expected: ${file}`);
  return problems;
}
