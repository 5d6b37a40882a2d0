import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import proto from '@temporalio/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../common/config.js';
import { queueFor } from '../../temporal/task-queues.js';
import { privateDiskSupport, spawnPrivate, spawnPrivateWorker } from '../helpers/private-worker.js';
import { eventually, killHard, temporalClient, testEnv } from '../helpers/stack.js';

const { TaskQueueKind, TaskQueueType } = proto.temporal.api.enums.v1;

/** The first line a child prints on stdout (the scripts below print one when their file is written). */
function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      out += chunk;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.once('exit', (code, signal) => reject(new Error(`exited (${code ?? signal}) before a line: ${out}`)));
  });
}

/** Mount points of a process's mount namespace (field 5 of /proc/<pid>/mountinfo) with their fs type. */
async function mounts(pid: number | 'self'): Promise<{ mountPoint: string; fsType: string }[]> {
  const text = await readFile(`/proc/${pid}/mountinfo`, 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [left, right] = line.split(' - ');
      return { mountPoint: left!.split(' ')[4]!, fsType: right!.split(' ')[0]! };
    });
}

describe('processes with a private disk at the same WORKSPACES_DIR', () => {
  // Every process gets the same absolute path, as every replica of a deployment would.
  const env = testEnv({ WORKER_QUEUES: 'execution' });
  const dir = env.WORKSPACES_DIR!;
  const children: ChildProcess[] = [];
  afterAll(async () => {
    await Promise.all(children.map(killHard));
    // What is left on the shared disk is the empty mount point each namespace created.
    await rm(dir, { recursive: true, force: true });
  });

  it('can be made on this machine (unshare + tmpfs as root), or says why not', () => {
    expect(privateDiskSupport()).toEqual({ ok: true });
  });

  it('when one process writes a file under it, then the other process and the test process do not see it', async () => {
    // A writes its file and stays; B looks at the same path (after A's file exists), writes its own, and stays.
    const a = spawnPrivate(dir, ['sh', '-c', 'echo from-a > "$DIR/a.txt" && echo written && exec sleep 600'], {
      env: { PATH: process.env.PATH ?? '', DIR: dir },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(a);
    expect(await firstLine(a)).toBe('written');
    const b = spawnPrivate(
      dir,
      ['sh', '-c', 'echo "[$(ls -A "$DIR" | tr "\\n" " ")]" && echo from-b > "$DIR/b.txt" && exec sleep 600'],
      { env: { PATH: process.env.PATH ?? '', DIR: dir }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(b);
    expect(await firstLine(b)).toBe('[]'); // B saw an empty directory: not A's file
    await eventually(() => existsSync(`/proc/${b.pid}/root${dir}/b.txt`), { what: "B's file", timeoutMs: 5_000 });

    // Positive control: each file really exists, in its own process's mount namespace (root can look through /proc).
    expect(await readFile(`/proc/${a.pid}/root${dir}/a.txt`, 'utf8')).toBe('from-a\n');
    expect(await readFile(`/proc/${b.pid}/root${dir}/b.txt`, 'utf8')).toBe('from-b\n');
    expect(existsSync(`/proc/${a.pid}/root${dir}/b.txt`)).toBe(false);
    expect(existsSync(`/proc/${b.pid}/root${dir}/a.txt`)).toBe(false);
    // The test process sees the same path, empty: the mount point on the shared disk, with neither file.
    expect(await readdir(dir)).toEqual([]);
    expect((await mounts('self')).some((m) => m.mountPoint === dir)).toBe(false);
    for (const child of [a, b]) {
      expect(await mounts(child.pid!)).toContainEqual({ mountPoint: dir, fsType: 'tmpfs' });
    }

    // The child's pid is the command's own (exec all the way), so SIGKILL reaches it and its disk goes with it.
    expect((await readFile(`/proc/${a.pid}/cmdline`, 'utf8')).split('\0')[0]).toBe('sleep');
    await killHard(a);
    expect(a.signalCode).toBe('SIGKILL');
    expect(existsSync(`/proc/${a.pid}`)).toBe(false);
    expect(await readdir(dir)).toEqual([]);
  });

  it('when spawnPrivateWorker starts workers/main.ts, then the worker polls from its own tmpfs and killHard kills node itself', async () => {
    const config = loadConfig(env);
    const client = await temporalClient(config);
    try {
      const worker = spawnPrivateWorker(env);
      children.push(worker);
      // unshare execs sh, which mounts and execs node: the same pid all the way, node's once the execs are done.
      const [argv0, ...rest] = await eventually(
        async () => {
          const argv = (await readFile(`/proc/${worker.pid}/cmdline`, 'utf8')).split('\0');
          return argv[0] === process.execPath && argv;
        },
        { timeoutMs: 10_000, what: 'the private worker to exec node' },
      );
      expect(argv0).toBe(process.execPath);
      expect(rest).toContain('--import');
      expect(rest.some((a) => a.endsWith('workers/main.ts'))).toBe(true);
      expect(await mounts(worker.pid!)).toContainEqual({ mountPoint: dir, fsType: 'tmpfs' });
      // The worker started inside its namespace and polls the execution queue under its own pid.
      await eventually(
        async () => {
          const res = await client.workflowService.describeTaskQueue({
            namespace: config.TEMPORAL_NAMESPACE,
            taskQueue: {
              name: queueFor('execution', config.TASK_QUEUE_PREFIX),
              kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL,
            },
            taskQueueType: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
          });
          return res.pollers.some((p) => p.identity?.startsWith(`${worker.pid}@`));
        },
        { timeoutMs: 60_000, what: 'the private worker to poll agency-execution' },
      );
      await killHard(worker);
      expect(worker.signalCode).toBe('SIGKILL');
      expect(existsSync(`/proc/${worker.pid}`)).toBe(false);
    } finally {
      await client.connection.close();
    }
  });
});
