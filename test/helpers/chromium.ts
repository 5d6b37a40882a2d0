/**
 * Finds Debian's `chromium` for the browser tests (driven by playwright-core with executablePath: playwright's own
 * browser downloads are not used), or installs it the way the machine's other tools are: `apt-get install -y chromium`
 * when running as root. Order: $CHROMIUM_PATH, `chromium` / `chromium-browser` on PATH, then the install. Anything
 * else fails with what to do.
 */
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const HINT = 'install it (Debian/Ubuntu: apt-get install chromium) or point CHROMIUM_PATH at a Chromium binary';

async function executable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function lookup(): Promise<string | undefined> {
  const given = process.env.CHROMIUM_PATH;
  if (given) {
    if (await executable(given)) return given;
    throw new Error(`CHROMIUM_PATH=${given} is not an executable file; ${HINT}`);
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter((d) => path.isAbsolute(d))) {
    for (const name of ['chromium', 'chromium-browser']) {
      if (await executable(path.join(dir, name))) return path.join(dir, name);
    }
  }
  return undefined;
}

export async function ensureChromium(log: (line: string) => void = () => undefined): Promise<string> {
  const found = await lookup();
  if (found) return found;
  if (process.getuid?.() !== 0) throw new Error(`chromium is not installed and this is not root; ${HINT}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): Promise<unknown> =>
    run('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], { env, timeout: 600_000 });
  log('chromium not found: apt-get install -y chromium');
  try {
    await install();
  } catch {
    try {
      // A fresh machine's package lists may be missing or old.
      await run('apt-get', ['update'], { env, timeout: 300_000 });
      await install();
    } catch (err) {
      throw new Error(`could not install chromium with apt-get: ${(err as Error).message.slice(0, 2000)}; ${HINT}`, {
        cause: err,
      });
    }
  }
  const installed = await lookup();
  if (!installed) throw new Error(`apt-get installed chromium, but no chromium is on PATH; ${HINT}`);
  return installed;
}
