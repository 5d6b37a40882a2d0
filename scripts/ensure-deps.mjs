// Installs dependencies when node_modules is missing or older than package-lock.json (plain JS: runs before any
// dependency exists). Used by `npm run dev` and `npm test` so that both work on a fresh clone.
//
// `npm ci` first. Some registries (mirrors) lack other platforms' optional binaries (e.g. @swc/core-darwin-arm64);
// npm then leaves them out of the lockfile and `npm ci` calls it out of sync. In that case `npm install` with the same
// lockfile installs the same tree; if it would change the lockfile, the lockfile really is stale and we stop.
import { execSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';

const mtime = (p) => {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
};
if (mtime('node_modules/.package-lock.json') < mtime('package-lock.json')) {
  process.stderr.write('installing dependencies (npm ci)…\n');
  try {
    execSync('npm ci --no-audit --no-fund', { stdio: ['ignore', 'inherit', 'pipe'] });
  } catch (err) {
    const output = String(err.stderr ?? '');
    if (!/can only install packages when your package\.json and package-lock\.json/.test(output)) {
      process.stderr.write(output);
      throw err;
    }
    process.stderr.write(
      'npm ci refused the lockfile (this registry lacks some optional packages); using npm install\n',
    );
    const lock = readFileSync('package-lock.json');
    execSync('npm install --no-audit --no-fund', { stdio: 'inherit' });
    if (!readFileSync('package-lock.json').equals(lock)) {
      writeFileSync('package-lock.json', lock);
      throw new Error('package-lock.json does not match package.json: run npm install and commit the lockfile', {
        cause: err,
      });
    }
  }
}
