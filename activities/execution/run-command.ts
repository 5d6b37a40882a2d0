/**
 * Runs one allow-listed program (argv, never a shell string) in a directory, with a timeout, an output cap,
 * a minimal environment, and cancellation that kills the whole process group.
 */
import { spawn } from 'node:child_process';
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
}

export class CommandRefused extends Error {
  override name = 'CommandRefused';
}

/** Variables a command may see; everything else (tokens, keys, database URLs) stays out. */
const PASSED_ENV = ['PATH', 'LANG', 'LC_ALL', 'TZ', 'TERM'];

export function runCommand(argv: readonly string[], opts: RunCommandOptions): Promise<CommandResult> {
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

  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(program, args, { cwd: opts.cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
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
}
