/**
 * Runs one allow-listed program (argv, never a shell string) in a directory, with a timeout, an output cap,
 * a minimal environment, and cancellation that kills the whole process group.
 *
 * A command must not outlive its worker: a worker killed outright would otherwise leave it running, and the
 * retried step would run beside it. So the program runs under `setpriv --pdeathsig KILL` (util-linux) where
 * available, and its process group is written to `groupFile` so that a retry first kills what a dead attempt left.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface CommandResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  output: string;
  truncated: boolean;
  durationMs: number;
}

export interface RunCommandOptions {
  cwd: string;
  timeoutMs: number;
  allowed: readonly string[];
  maxOutputBytes?: number;
  signal?: AbortSignal;
  onTick?: () => void;
  /** Where to record the command's process group, so that a later attempt can kill it if this worker dies. */
  groupFile?: string;
}

export class CommandRefused extends Error {
  override name = 'CommandRefused';
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
});

/** Kills the process group a previous attempt recorded, if it is still alive. */
export async function killStaleGroup(groupFile: string): Promise<boolean> {
  const pgid = Number((await readFile(groupFile, 'utf8').catch(() => '')).trim());
  await rm(groupFile, { force: true });
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

/** Variables a command may see; everything else (tokens, keys, database URLs) stays out. */
const PASSED_ENV = ['PATH', 'LANG', 'LC_ALL', 'TZ', 'TERM'];

export async function runCommand(argv: readonly string[], opts: RunCommandOptions): Promise<CommandResult> {
  const [program, ...args] = argv;
  if (!program) throw new CommandRefused('empty command');
  const name = path.basename(program);
  if (program.includes('/') || !opts.allowed.includes(name)) {
    throw new CommandRefused(
      `command ${JSON.stringify(program)} is not allowed; allowed programs: ${opts.allowed.join(', ')} (EXECUTION_ALLOWED_COMMANDS)`,
    );
  }
  const maxOutput = opts.maxOutputBytes ?? 1024 * 1024;
  const env: NodeJS.ProcessEnv = { HOME: opts.cwd, CI: 'true' };
  for (const key of PASSED_ENV) if (process.env[key] !== undefined) env[key] = process.env[key];

  if (opts.groupFile) await killStaleGroup(opts.groupFile);
  const [file, fileArgs] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', program, ...args]] : [program, args];

  const result = await new Promise<CommandResult>((resolve, reject) => {
    const started = Date.now();
    const child = spawn(file, fileArgs, { cwd: opts.cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    if (opts.groupFile && child.pid) void writeFile(opts.groupFile, String(child.pid)).catch(() => undefined);
    const chunks: Buffer[] = [];
    let size = 0;
    let truncated = false;
    let timedOut = false;
    const collect = (chunk: Buffer): void => {
      if (size >= maxOutput) {
        truncated = true;
        return;
      }
      const room = maxOutput - size;
      chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
      size += Math.min(chunk.length, room);
      if (chunk.length > room) truncated = true;
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);

    const killGroup = (): void => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, opts.timeoutMs);
    const tick = opts.onTick ? setInterval(opts.onTick, 1_000) : undefined;
    const onAbort = (): void => killGroup();
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const finish = (): void => {
      clearTimeout(timer);
      if (tick) clearInterval(tick);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    child.on('error', (err) => {
      finish();
      reject(err);
    });
    child.on('close', (exitCode, signal) => {
      finish();
      resolve({
        exitCode,
        signal,
        timedOut,
        output: Buffer.concat(chunks).toString('utf8'),
        truncated,
        durationMs: Date.now() - started,
      });
    });
  });
  if (opts.groupFile) await rm(opts.groupFile, { force: true });
  return result;
}
