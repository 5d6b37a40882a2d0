/**
 * Worker processes that share no disk: each runs in its own mount namespace with a private tmpfs mounted at
 * WORKSPACES_DIR, as pods with their own `emptyDir` would. Every process gets the same absolute path, but what one
 * writes under it no other process sees (nor the test or bench process that started it): the mount exists only in that
 * process's namespace, and goes away with it.
 *
 *   unshare --mount --propagation private sh -c 'mkdir -p "$dir" && mount -t tmpfs … tmpfs "$dir" && exec "$0" "$@"' node …
 *
 * `exec` makes the shell (which unshare itself execs, no fork) become node, so the child's pid is node's: a SIGKILL
 * (killHard in test/helpers/stack.ts) reaches the worker itself, as a crash would.
 *
 * Needs root (CAP_SYS_ADMIN, to mount) and util-linux `unshare`; privateDiskSupport() says why not where it cannot work.
 * One caveat: a process in the same PID namespace with root can still reach another's files through
 * /proc/<pid>/root/<dir> (the privacy test uses that as its positive control); the platform does not look there.
 *
 * No vitest import here: bench/survival.ts uses this file too.
 */
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../common/config.js';

export interface PrivateDiskOptions {
  /** Size limit of the tmpfs (mount's `size=`). Default 1g (tmpfs takes memory only for what is written). */
  size?: string;
}

export interface PrivateWorkerOptions extends PrivateDiskOptions {
  /** Default as spawnWorkerProcess: stdout ignored, stderr inherited when TEST_LOG_LEVEL is set. */
  stdio?: StdioOptions;
}

/** The mount inside the namespace; fails loudly (exit 125) instead of running the command on the shared disk. */
const SCRIPT =
  'dir="$PRIVATE_DISK_DIR"; size="$PRIVATE_DISK_SIZE"; ' +
  'mkdir -p "$dir" || { echo "private disk: cannot create $dir" >&2; exit 125; }; ' +
  'mount -t tmpfs -o "size=$size,mode=0755" tmpfs "$dir" || { echo "private disk: cannot mount a tmpfs at $dir" >&2; exit 125; }; ' +
  'unset PRIVATE_DISK_DIR PRIVATE_DISK_SIZE; exec "$0" "$@"';

/**
 * The command line that runs `argv` with a private tmpfs at `dir`. Pass the returned env to spawn (merged over the
 * child's own): the script reads the directory and size from it, so no path is ever quoted into shell text.
 */
export function privateDiskCommand(
  dir: string,
  argv: readonly string[],
  { size = '1g' }: PrivateDiskOptions = {},
): { command: string; args: string[]; env: Record<string, string> } {
  if (!path.isAbsolute(dir)) throw new Error(`private disk: expected an absolute directory, got ${dir}`);
  if (argv.length === 0) throw new Error('private disk: no command to run');
  if (!/^[0-9]+[kmg%]?$/.test(size)) throw new Error(`private disk: bad tmpfs size ${size}`);
  return {
    command: 'unshare',
    args: ['--mount', '--propagation', 'private', 'sh', '-c', SCRIPT, ...argv],
    env: { PRIVATE_DISK_DIR: dir, PRIVATE_DISK_SIZE: size },
  };
}

let support: { ok: true } | { ok: false; reason: string } | undefined;

/**
 * Whether a private mount namespace with a tmpfs can be made here (checked once per process, by doing it): unshare on
 * PATH, and the right to mount (root, or CAP_SYS_ADMIN).
 */
export function privateDiskSupport(): { ok: true } | { ok: false; reason: string } {
  if (support) return support;
  if (process.platform !== 'linux')
    return (support = { ok: false, reason: `needs Linux (this is ${process.platform})` });
  const probeDir = mkdtempSync(path.join(os.tmpdir(), 'agency-private-disk-probe-'));
  try {
    const { command, args, env } = privateDiskCommand(probeDir, ['touch', path.join(probeDir, 'probe')], {
      size: '1m',
    });
    const probe = spawnSync(command, args, {
      env: { PATH: process.env.PATH ?? '', ...env },
      encoding: 'utf8',
      timeout: 10_000,
    });
    if (probe.error) {
      const missing = (probe.error as NodeJS.ErrnoException).code === 'ENOENT';
      return (support = {
        ok: false,
        reason: missing
          ? '`unshare` (util-linux) is not on PATH: install util-linux'
          : `could not run unshare: ${probe.error.message}`,
      });
    }
    if (probe.status !== 0) {
      const uid = process.getuid?.();
      return (support = {
        ok: false,
        reason:
          `\`unshare --mount\` + \`mount -t tmpfs\` failed (exit ${probe.status}${probe.signal ? `, ${probe.signal}` : ''}` +
          `${uid !== 0 ? `; running as uid ${uid}, not root` : ''}): ${(probe.stderr || probe.stdout).trim() || 'no output'}. ` +
          'A private per-process disk needs root or CAP_SYS_ADMIN (in a container: --privileged or --cap-add SYS_ADMIN)',
      });
    }
    // The probe wrote inside its own tmpfs: nothing may have reached the directory on the shared disk.
    const leaked = spawnSync('ls', ['-A', probeDir], { encoding: 'utf8' }).stdout.trim();
    if (leaked) return (support = { ok: false, reason: `the tmpfs was not private: ${probeDir} shows ${leaked}` });
    return (support = { ok: true });
  } finally {
    rmSync(probeDir, { recursive: true, force: true });
  }
}

function requirePrivateDisk(): void {
  const s = privateDiskSupport();
  if (!s.ok) throw new Error(`cannot give a process a private disk: ${s.reason}`);
}

/** Runs `argv` with a private tmpfs at `dir` (see privateDiskCommand). Throws when this machine cannot do it. */
export function spawnPrivate(
  dir: string,
  argv: readonly string[],
  {
    env = {},
    cwd = PROJECT_ROOT,
    stdio = ['ignore', 'ignore', 'inherit'],
    size,
  }: { env?: Record<string, string>; cwd?: string; stdio?: StdioOptions } & PrivateDiskOptions = {},
): ChildProcess {
  requirePrivateDisk();
  const cmd = privateDiskCommand(dir, argv, size ? { size } : {});
  return spawn(cmd.command, cmd.args, { cwd, env: { ...env, ...cmd.env }, stdio });
}

/**
 * Starts `workers/main.ts` as spawnWorkerProcess (test/helpers/stack.ts) does — same command line, environment and
 * default stdio — but with a private tmpfs at env.WORKSPACES_DIR. Give every such process the same WORKSPACES_DIR.
 * The returned child's pid is node's, so killHard(child) kills the worker.
 */
export function spawnPrivateWorker(env: Record<string, string>, opts: PrivateWorkerOptions = {}): ChildProcess {
  const dir = env.WORKSPACES_DIR;
  if (!dir) throw new Error('spawnPrivateWorker: env.WORKSPACES_DIR is required (the directory to make private)');
  return spawnPrivate(dir, [process.execPath, '--import', 'tsx', path.join(PROJECT_ROOT, 'workers', 'main.ts')], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    cwd: PROJECT_ROOT,
    stdio: opts.stdio ?? ['ignore', 'ignore', process.env.TEST_LOG_LEVEL ? 'inherit' : 'ignore'],
    ...(opts.size ? { size: opts.size } : {}),
  });
}
