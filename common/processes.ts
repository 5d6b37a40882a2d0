/** Servers the project starts itself (the Temporal dev server, the S3 test server): stopping them, reading their logs. */
import { readFile, stat } from 'node:fs/promises';
import net from 'node:net';

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Signals the process group (servers are started detached, as group leaders), else the process alone. */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  }
}

/** SIGTERM, then SIGKILL after `timeoutMs`. */
export async function stopPid(pid: number, timeoutMs = 15_000): Promise<void> {
  if (!processAlive(pid)) return;
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (processAlive(pid)) signal(pid, 'SIGKILL');
}

export async function sizeOf(file: string): Promise<number> {
  return (await stat(file).catch(() => ({ size: 0 }))).size;
}

/** What a server wrote to its log since `offset`, the last 3,000 characters of it. */
export async function logTail(file: string, offset: number): Promise<string> {
  const text = (await readFile(file).catch(() => Buffer.alloc(0))).subarray(offset).toString('utf8');
  return text.length ? text.slice(-3_000) : '(nothing)';
}

/** A TCP port on `host` that was free a moment ago (the OS picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
