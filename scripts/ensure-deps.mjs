// Installs dependencies when node_modules is missing or older than package-lock.json (plain JS: runs before any
// dependency exists). Used by `npm run dev` and `npm test` so that both work on a fresh clone.
//
// 1. A real mismatch between package.json and the lockfile stops at once, naming the package.
// 2. `npm ci`.
// 3. If npm ci calls the lockfile out of sync, the registry's contents have shifted (it serves, or has stopped
//    serving, some optional packages). `npm install` installs the same tree; when what it would write into the
//    lockfile differs only in optional packages, we say so in one line, keep the committed lockfile and go on.
//    Any other difference stops, naming the packages. The rule is in lockfile-drift.mjs.
import { execSync } from 'node:child_process';
import { readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { classifyLockChange, describeOptionalDrift, directMismatches } from './lockfile-drift.mjs';

const LOCK = 'package-lock.json';
const INSTALLED = 'node_modules/.package-lock.json';
// onnxruntime-node's install script would fetch CUDA binaries from NuGet on linux/x64; the CPU build ships in the
// package. npm 11 blocks dependency scripts anyway (package.json `allowScripts` denies them); this covers older npm.
const env = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' };

const mtime = (p) => {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
};
const fail = (message, lines) => {
  process.stderr.write(`${message}\n${lines.map((l) => `  ${l}\n`).join('')}`);
  process.exit(1);
};

if (mtime(INSTALLED) < mtime(LOCK)) {
  const committed = readFileSync(LOCK);
  const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
  const direct = directMismatches(pkg, JSON.parse(committed.toString()));
  if (direct.length) fail('package-lock.json does not match package.json (run npm install and commit it):', direct);

  process.stderr.write('installing dependencies (npm ci)…\n');
  try {
    execSync('npm ci --no-audit --no-fund', { stdio: ['ignore', 'inherit', 'pipe'], env });
  } catch (err) {
    const output = String(err.stderr ?? '');
    if (!/can only install packages when your package\.json and package-lock\.json/.test(output)) {
      process.stderr.write(output);
      throw err;
    }
    execSync('npm install --no-audit --no-fund', { stdio: ['ignore', 'ignore', 'inherit'], env });
    const rewritten = JSON.parse(readFileSync(LOCK, 'utf8'));
    writeFileSync(LOCK, committed);
    const change = classifyLockChange(JSON.parse(committed.toString()), rewritten);
    if (change.kind === 'mismatch') {
      rmSync(INSTALLED, { force: true }); // the next run installs again
      fail('package-lock.json is stale: npm install would change it (run npm install and commit it):', change.changed);
    }
    if (change.kind === 'optional-only') process.stderr.write(`${describeOptionalDrift(change)}\n`);
    // The lockfile was written back after the install: mark node_modules as current for it.
    const now = new Date();
    utimesSync(INSTALLED, now, now);
  }
}
