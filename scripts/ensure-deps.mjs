// Installs dependencies when node_modules is missing or older than package-lock.json (plain JS: runs before any
// dependency exists). Used by `npm run dev` and `npm test` so that both work on a fresh clone.
import { execSync } from 'node:child_process';
import { statSync } from 'node:fs';

const mtime = (p) => {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
};
if (mtime('node_modules/.package-lock.json') < mtime('package-lock.json')) {
  process.stderr.write('installing dependencies (npm ci)…\n');
  execSync('npm ci --no-audit --no-fund', { stdio: 'inherit' });
}
