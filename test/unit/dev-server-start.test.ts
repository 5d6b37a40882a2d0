// startDevServer's failure paths, with stand-in CLIs instead of Temporal: a server that never answers, one that
// never prints, and one that exits. Each failure names what happened, carries the tail of the server's log, and
// leaves nothing running.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startDevServer } from '../../temporal/dev-server.js';
import { freePort } from '../helpers/ports.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'agency-devserver-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A stand-in CLI: a shell script that records its pid (and its child's) and then does what `body` says. */
async function standIn(body: string): Promise<string> {
  const file = path.join(dir, 'temporal');
  await writeFile(file, `#!/bin/sh\necho $$ > "${dir}/pids"\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}

/** Running, and not a zombie waiting for its parent (an orphan's new parent may reap it a moment later). */
const alive = async (pid: number): Promise<boolean> => {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
};
const pidsOf = async (): Promise<number[]> =>
  (await readFile(path.join(dir, 'pids'), 'utf8')).split(/\s+/).filter(Boolean).map(Number);

describe('startDevServer when the server does not come up', () => {
  it('stops a server that printed but never answered, and shows its log', async () => {
    // Prints a line, then keeps a grandchild running (as a real server's helper process would) and never listens.
    const cli = await standIn(`echo "stand-in: starting on $4"\nsleep 600 &\necho $! >> "${dir}/pids"\nwait`);
    const started = Date.now();
    const error = await startDevServer({
      cli,
      port: await freePort(),
      ui: false,
      stateDir: dir,
      firstOutputTimeoutMs: 20_000,
      answerTimeoutMs: 1_500,
    }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(error?.message).toMatch(/did not answer at 127\.0\.0\.1:\d+ within 1\.5 s of its first log line/);
    expect(error?.message).toMatch(/its log ends with:\nstand-in: starting on \d+/);
    expect(Date.now() - started).toBeLessThan(15_000);
    const pids = await pidsOf();
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(await alive(pid)).toBe(false);
  });

  it('gives a silent server the first-output deadline, then stops it', async () => {
    const cli = await standIn('exec sleep 600');
    const port = await freePort();
    const error = await startDevServer({
      cli,
      port,
      ui: false,
      stateDir: dir,
      firstOutputTimeoutMs: 1_500,
      answerTimeoutMs: 60_000,
    }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(error?.message).toMatch(/printed nothing within 1\.5 s of its start; its log ends with:\n\(nothing\)/);
    const [pid] = await pidsOf();
    expect(await alive(pid!)).toBe(false);
    await expect(readFile(path.join(dir, `temporal-${port}.pid`), 'utf8')).rejects.toThrow(/ENOENT/);
  });

  it('reports a server that exits during start-up with only this start’s log lines', async () => {
    const port = await freePort();
    await writeFile(path.join(dir, `temporal-${port}.log`), 'an earlier run\n');
    const cli = await standIn('echo "listen tcp: address already in use" >&2\nexit 1');
    await expect(startDevServer({ cli, port, ui: false, stateDir: dir })).rejects.toThrow(
      /exited during start-up; its log ends with:\nlisten tcp: address already in use\n$/,
    );
  });

  it('starts again when a port the server picked for itself was taken, at most three times; never for its own port', async () => {
    const port = await freePort();
    const starts = path.join(dir, 'starts');
    const failWith = async (taken: number): Promise<string> =>
      standIn(
        `echo start >> "${starts}"\n` +
          `echo "failed listening for HTTP API on 127.0.0.1:${taken}: listen tcp 127.0.0.1:${taken}: bind: address already in use" >&2\nexit 1`,
      );
    const count = async (): Promise<number> => (await readFile(starts, 'utf8')).split('\n').filter(Boolean).length;

    const lines: string[] = [];
    const other = await failWith(port + 1);
    await expect(
      startDevServer({ cli: other, port, ui: false, stateDir: dir, log: (l) => lines.push(l) }),
    ).rejects.toThrow(new RegExp(`127\\.0\\.0\\.1:${port + 1}: bind: address already in use`));
    expect(await count()).toBe(3);
    expect(lines.filter((l) => l.includes(`port ${port + 1}, which the dev server picked for itself`))).toHaveLength(2);

    await rm(starts);
    const own = await failWith(port);
    await expect(startDevServer({ cli: own, port, ui: false, stateDir: dir })).rejects.toThrow(
      /address already in use/,
    );
    expect(await count()).toBe(1);
  });
});
