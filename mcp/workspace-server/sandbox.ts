/**
 * Runs one allow-listed program (argv, never a shell string) in a bubblewrap sandbox confined to the workspace.
 *
 * Why each piece is there:
 * - A minimal root, not `--ro-bind / /`: read-only /usr (and the merged-usr links), the loader cache and CA
 *   certificates, a fake /etc/passwd, a fresh /proc (new pid namespace: only the sandbox is visible), a private /dev
 *   and a size-capped /tmp. The workspace is the only writable place. No network (a loopback with nothing behind it).
 * - `--clearenv` and four variables (PATH, HOME, LANG, CI): tokens, keys and database URLs never enter. The launcher
 *   itself gets an empty-ish environment too, because /proc/1/environ inside the sandbox is bwrap's own.
 * - Processes: RLIMIT_NPROC is not enforced for root (the kernel exempts the initial user), so the process limit is a
 *   child of a writable `pids` cgroup (v1 or delegated v2); the launcher joins it before exec, so nothing escapes it.
 *   When not root, `prlimit --nproc` is added. Memory: `prlimit --as`; file size: `prlimit --fsize`.
 * - Lifetime: `setpriv --pdeathsig KILL` on the launcher and `--die-with-parent` inside: if this server dies, bwrap
 *   dies, its pid namespace dies, and with it every process the command started. Timeout, output cap and abort
 *   SIGKILL the whole process group; leftovers in the cgroup are killed before it is removed.
 *
 * When no sandbox is available, commands are refused unless SANDBOX_ALLOW_UNSANDBOXED=true, in which case they run with
 * the old protections only (minimal environment, timeout, output cap, process-group kill, pdeathsig).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { accessSync, constants, realpathSync, statSync, lstatSync, readlinkSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bubblewrapCacheDir, ensureBubblewrap } from './bubblewrap.js';

export type LimitHit = 'time' | 'output' | 'processes' | 'memory' | 'file-size' | 'cancelled';
export type ProcessLimitKind = 'cgroup-v1' | 'cgroup-v2' | 'rlimit';

export type SandboxInfo =
  | { kind: 'bubblewrap'; bwrap: string; version: string; processLimit: ProcessLimitKind; cgroupParent?: string }
  | { kind: 'none'; reason: string };

export interface SandboxLimits {
  timeoutMs: number;
  maxOutputBytes: number;
  maxProcesses: number;
  memoryBytes: number;
  /** Largest file a command may write (RLIMIT_FSIZE): a runaway writer cannot fill the disk with one file. */
  maxFileBytes: number;
  /** Size of the sandbox's /tmp (a tmpfs, so it is memory). */
  tmpBytes: number;
}

const MiB = 1024 * 1024;
export const DEFAULT_LIMITS: SandboxLimits = {
  timeoutMs: 120_000,
  maxOutputBytes: MiB,
  maxProcesses: 128,
  memoryBytes: 2048 * MiB,
  maxFileBytes: 1024 * MiB,
  tmpBytes: 256 * MiB,
};

export interface SandboxResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** The limit that stopped or hampered the command, if any. */
  limit: LimitHit | null;
  output: string;
  truncated: boolean;
  durationMs: number;
  sandbox: 'bubblewrap' | 'none';
}

export class CommandRefused extends Error {
  override name = 'CommandRefused';
}

function findExecutable(candidates: string[]): string | undefined {
  return candidates.find((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const SETPRIV = findExecutable(['/usr/bin/setpriv', '/bin/setpriv']);

/** `argv` under `setpriv --pdeathsig KILL` (util-linux) where available: it dies when its parent dies. */
export function withParentDeathSignal(argv: readonly string[]): string[] {
  return SETPRIV ? [SETPRIV, '--pdeathsig', 'KILL', '--', ...argv] : [...argv];
}
const PRLIMIT = findExecutable(['/usr/bin/prlimit', '/bin/prlimit']);
const SH = findExecutable(['/bin/sh', '/usr/bin/sh']) ?? '/bin/sh';
/** The launcher's own environment: /proc/1/environ inside the sandbox shows it, so it holds nothing else. */
const LAUNCHER_ENV = { PATH: '/usr/bin:/bin' };
const SANDBOX_PATH = '/usr/local/bin:/usr/bin:/bin';
const SANDBOX_UID = '1000';

// ---------------------------------------------------------------------------------------------------------------
// Spawning with limits (used for the sandbox launcher, for unsandboxed commands and for host git)

export interface HostRunOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  maxOutputBytes: number;
  signal?: AbortSignal;
  onTick?: () => void;
}

export interface HostRunResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  outputExceeded: boolean;
  cancelled: boolean;
  output: string;
  truncated: boolean;
  durationMs: number;
}

/**
 * Spawns `file args` in its own process group under `setpriv --pdeathsig KILL`, collecting stdout+stderr up to
 * `maxOutputBytes`; on timeout, output overflow or abort the whole group is SIGKILLed at once.
 */
export function runOnHost(file: string, args: readonly string[], opts: HostRunOptions): Promise<HostRunResult> {
  const [cmd = file, ...cmdArgs] = withParentDeathSignal([file, ...args]);
  return new Promise<HostRunResult>((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, cmdArgs, {
      cwd: opts.cwd,
      env: opts.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let truncated = false;
    let timedOut = false;
    let outputExceeded = false;
    let cancelled = false;
    let settled = false;

    const killGroup = (): void => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const collect = (chunk: Buffer): void => {
      if (outputExceeded) return;
      const room = opts.maxOutputBytes - size;
      if (chunk.length > room) {
        chunks.push(chunk.subarray(0, Math.max(0, room)));
        size = opts.maxOutputBytes;
        truncated = true;
        outputExceeded = true;
        killGroup();
        return;
      }
      chunks.push(chunk);
      size += chunk.length;
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);

    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, opts.timeoutMs);
    const tick = opts.onTick ? setInterval(opts.onTick, 1_000) : undefined;
    const onAbort = (): void => {
      cancelled = true;
      killGroup();
    };
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    let closeGrace: NodeJS.Timeout | undefined;
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(closeGrace);
      if (tick) clearInterval(tick);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve({
        exitCode,
        signal,
        timedOut,
        outputExceeded,
        cancelled,
        output: Buffer.concat(chunks).toString('utf8'),
        truncated,
        durationMs: Math.round(performance.now() - started),
      });
    };
    child.on('error', (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (tick) clearInterval(tick);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.on('close', finish);
    // A descendant that left the process group could hold the pipes open forever: stop waiting for it.
    child.on('exit', (exitCode, signal) => {
      closeGrace = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish(exitCode, signal);
      }, 1_000);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The pids cgroup (the process limit)

interface PidsHierarchy {
  version: 1 | 2;
  /** This process's own cgroup directory in the hierarchy that has the pids controller. */
  dir: string;
}

function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

async function ownPidsHierarchy(): Promise<PidsHierarchy | undefined> {
  const [cgroups, mountinfo] = await Promise.all([
    readFile('/proc/self/cgroup', 'utf8').catch(() => ''),
    readFile('/proc/self/mountinfo', 'utf8').catch(() => ''),
  ]);
  const mounts = mountinfo
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [left = '', right = ''] = line.split(' - ');
      const fields = left.split(' ');
      const [fstype = '', , superOpts = ''] = right.split(' ');
      return { root: unescapeMount(fields[3] ?? '/'), point: unescapeMount(fields[4] ?? ''), fstype, superOpts };
    });
  const under = (mount: { root: string; point: string }, cgPath: string): string | undefined => {
    const rel = path.relative(mount.root, cgPath);
    if (rel.startsWith('..')) return undefined;
    return path.join(mount.point, rel);
  };
  for (const line of cgroups.split('\n').filter(Boolean)) {
    const [, controllers = '', cgPath = '/'] = /^(?:\d+):([^:]*):(.*)$/.exec(line) ?? [];
    if (controllers.split(',').includes('pids')) {
      const mount = mounts.find((m) => m.fstype === 'cgroup' && m.superOpts.split(',').includes('pids'));
      const dir = mount && under(mount, cgPath);
      if (dir) return { version: 1, dir };
    }
  }
  const v2 = /^0::(.*)$/m.exec(cgroups);
  const mount = mounts.find((m) => m.fstype === 'cgroup2');
  if (v2?.[1] && mount) {
    const dir = under(mount, v2[1]);
    const controllers = dir ? await readFile(path.join(dir, 'cgroup.subtree_control'), 'utf8').catch(() => '') : '';
    if (dir && controllers.split(/\s+/).includes('pids')) return { version: 2, dir };
  }
  return undefined;
}

const CGROUP_PREFIX = 'agency-sandbox-';

async function createChildCgroup(parent: string, maxProcesses: number): Promise<string> {
  const dir = path.join(parent, `${CGROUP_PREFIX}${process.pid}-${randomUUID().slice(0, 8)}`);
  await mkdir(dir);
  try {
    await writeFile(path.join(dir, 'pids.max'), String(maxProcesses));
  } catch (err) {
    await rmdir(dir).catch(() => undefined);
    throw err;
  }
  return dir;
}

/** How many forks the pids limit refused (`max N` in pids.events, both v1 and v2). */
async function processLimitHits(dir: string): Promise<number> {
  const events = await readFile(path.join(dir, 'pids.events'), 'utf8').catch(() => '');
  return Number(/^max\s+(\d+)/m.exec(events)?.[1] ?? 0);
}

async function cgroupPids(dir: string): Promise<number[]> {
  const text = await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map(Number);
}

/** Kills whatever is still in the cgroup and removes it (a fork bomb may need a few rounds). */
async function destroyCgroup(dir: string): Promise<void> {
  for (let round = 0; round < 100; round++) {
    for (const pid of await cgroupPids(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Removes cgroups left by servers that died (the pid is in the name). */
async function sweepStaleCgroups(parent: string): Promise<void> {
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (!name.startsWith(CGROUP_PREFIX)) continue;
    const owner = Number(name.slice(CGROUP_PREFIX.length).split('-')[0]);
    let alive = false;
    try {
      process.kill(owner, 0);
      alive = true;
    } catch {
      /* owner is gone */
    }
    if (!alive) await destroyCgroup(path.join(parent, name));
  }
}

async function usableCgroupParent(): Promise<{ kind: ProcessLimitKind; parent: string } | { reason: string }> {
  const hierarchy = await ownPidsHierarchy();
  if (!hierarchy) return { reason: 'no pids cgroup controller (v1, or v2 delegated with pids in subtree_control)' };
  try {
    const probe = await createChildCgroup(hierarchy.dir, 1);
    await rmdir(probe);
  } catch (err) {
    return { reason: `the pids cgroup ${hierarchy.dir} is not writable (${(err as Error).message})` };
  }
  return { kind: hierarchy.version === 1 ? 'cgroup-v1' : 'cgroup-v2', parent: hierarchy.dir };
}

// ---------------------------------------------------------------------------------------------------------------
// Programs and the sandbox's file system

/** Resolves an allow-listed program name on the host PATH, ignoring PATH entries that are relative or in the workspace. */
export function resolveProgram(name: string, env: NodeJS.ProcessEnv, root: string): string | undefined {
  for (const dir of (env.PATH ?? SANDBOX_PATH).split(path.delimiter)) {
    if (!path.isAbsolute(dir)) continue;
    const rel = path.relative(root, dir);
    if (rel === '' || !rel.startsWith('..')) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** Directories of allowed programs living outside /usr, which the sandbox must see (read-only) to run them. */
function programDirs(programs: readonly string[]): string[] {
  const dirs = new Set<string>();
  for (const program of programs) {
    for (const dir of [path.dirname(program), path.dirname(realpathSync(program))]) {
      if (dir !== '/usr' && !dir.startsWith('/usr/') && dir !== '/') dirs.add(dir);
    }
  }
  return [...dirs];
}

let fakeEtc: Promise<string> | undefined;
/**
 * /etc/passwd and /etc/group naming the sandbox user: some tools (os.userInfo(), ssh, git) look the user up.
 * Static content, kept in the user's cache (not /tmp, where another user could plant it), written atomically once.
 */
function fakeEtcDir(env: NodeJS.ProcessEnv): Promise<string> {
  fakeEtc ??= (async () => {
    const dir = path.join(bubblewrapCacheDir(env), '..', 'sandbox-etc');
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const files = {
      passwd: `root:x:0:0:root:/root:/bin/sh\nsandbox:x:${SANDBOX_UID}:${SANDBOX_UID}:sandbox:/tmp:/bin/sh\n`,
      group: `root:x:0:\nsandbox:x:${SANDBOX_UID}:\n`,
    };
    for (const [name, content] of Object.entries(files)) {
      const file = path.join(dir, name);
      if ((await readFile(file, 'utf8').catch(() => undefined)) === content) continue;
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, content, { mode: 0o644 });
      await rename(tmp, file);
    }
    return path.resolve(dir);
  })();
  fakeEtc.catch(() => (fakeEtc = undefined));
  return fakeEtc;
}

function rootEntries(): string[] {
  const args: string[] = ['--ro-bind', '/usr', '/usr'];
  // On merged-usr systems these are symlinks into /usr: recreate them as links, else bind the real directories.
  for (const dir of ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    try {
      const st = lstatSync(dir);
      if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(dir), dir);
      else if (st.isDirectory()) args.push('--ro-bind', dir, dir);
    } catch {
      /* absent on this system */
    }
  }
  for (const file of [
    '/etc/ld.so.cache',
    '/etc/ld.so.conf',
    '/etc/ld.so.conf.d',
    '/etc/alternatives',
    '/etc/ssl/certs',
  ]) {
    args.push('--ro-bind-try', file, file);
  }
  return args;
}

function bwrapArgs(root: string, limits: SandboxLimits, etc: string, extraDirs: readonly string[]): string[] {
  const pathVar = [...extraDirs, SANDBOX_PATH].join(':');
  return [
    '--unshare-all',
    '--unshare-user',
    '--disable-userns',
    '--uid',
    SANDBOX_UID,
    '--gid',
    SANDBOX_UID,
    '--cap-drop',
    'ALL',
    '--die-with-parent',
    '--new-session',
    '--hostname',
    'sandbox',
    ...rootEntries(),
    '--ro-bind',
    path.join(etc, 'passwd'),
    '/etc/passwd',
    '--ro-bind',
    path.join(etc, 'group'),
    '/etc/group',
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--size',
    String(limits.tmpBytes),
    '--tmpfs',
    '/tmp',
    ...extraDirs.flatMap((dir) => ['--ro-bind', dir, dir]),
    '--bind',
    root,
    root,
    '--chdir',
    root,
    '--clearenv',
    '--setenv',
    'PATH',
    pathVar,
    '--setenv',
    'HOME',
    root,
    '--setenv',
    'LANG',
    'C.UTF-8',
    '--setenv',
    'CI',
    'true',
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Detection

export interface DetectOptions {
  env?: NodeJS.ProcessEnv;
  /** 'none' forces the unsandboxed path (tests use it to show an attack is real without confinement). */
  mode?: 'auto' | 'none';
  log?: (line: string) => void;
}

const detected = new Map<string, Promise<SandboxInfo>>();

/** Finds bubblewrap and a process-limit mechanism and proves them with a trial run. Cached per process. */
export function detectSandbox(opts: DetectOptions = {}): Promise<SandboxInfo> {
  const env = opts.env ?? process.env;
  const mode = opts.mode ?? (env.SANDBOX_MODE === 'none' ? 'none' : 'auto');
  const key = `${mode}\0${env.BWRAP_PATH ?? ''}`;
  let result = detected.get(key);
  if (!result) {
    result = detect(mode, env, opts.log ?? (() => undefined));
    detected.set(key, result);
  }
  return result;
}

async function detect(
  mode: 'auto' | 'none',
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<SandboxInfo> {
  if (mode === 'none') return { kind: 'none', reason: 'sandbox disabled (SANDBOX_MODE=none)' };
  if (process.platform !== 'linux') {
    return { kind: 'none', reason: `bubblewrap needs Linux (this is ${process.platform})` };
  }
  const bw = await ensureBubblewrap({ env, log });
  if (!bw.found) return { kind: 'none', reason: bw.reason };
  if (!PRLIMIT) {
    return { kind: 'none', reason: 'prlimit (util-linux) not found: it sets the memory and file-size limits' };
  }

  const cgroup = await usableCgroupParent();
  let info: SandboxInfo;
  if ('parent' in cgroup) {
    await sweepStaleCgroups(cgroup.parent);
    info = {
      kind: 'bubblewrap',
      bwrap: bw.path,
      version: bw.version,
      processLimit: cgroup.kind,
      cgroupParent: cgroup.parent,
    };
  } else if (process.getuid?.() !== 0) {
    info = { kind: 'bubblewrap', bwrap: bw.path, version: bw.version, processLimit: 'rlimit' };
  } else {
    return {
      kind: 'none',
      reason: `running as root, where RLIMIT_NPROC is not enforced, and ${cgroup.reason}: nothing would bound the number of processes`,
    };
  }

  // A fixed, empty directory (`true` writes nothing), so a process killed mid-trial leaves no litter.
  const trialRoot = path.resolve(bubblewrapCacheDir(env), '..', 'sandbox-trial');
  try {
    await mkdir(trialRoot, { recursive: true });
    const trial = await runSandboxed(['true'], {
      root: trialRoot,
      allowed: ['true'],
      sandbox: info,
      allowUnsandboxed: false,
      limits: { ...DEFAULT_LIMITS, timeoutMs: 30_000 },
      env,
    });
    if (trial.exitCode !== 0) {
      return { kind: 'none', reason: `bubblewrap trial run failed (exit ${trial.exitCode}): ${trial.output.trim()}` };
    }
  } catch (err) {
    return { kind: 'none', reason: `bubblewrap trial run failed: ${(err as Error).message}` };
  }
  return info;
}

// ---------------------------------------------------------------------------------------------------------------
// Running

export interface RunSandboxedOptions {
  /** The workspace root, already realpath'd: the only writable directory and the working directory. */
  root: string;
  allowed: readonly string[];
  sandbox: SandboxInfo;
  allowUnsandboxed: boolean;
  limits: SandboxLimits;
  /** Where programs are looked up (the server's PATH); never passed to the command. */
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  onTick?: () => void;
}

/** The message for a refused command when there is no sandbox. */
export function noSandboxMessage(reason: string): string {
  return (
    `command execution refused: no sandbox (${reason}); ` +
    'install bubblewrap (Debian package `bubblewrap`) or set SANDBOX_ALLOW_UNSANDBOXED=true'
  );
}

const MEMORY_FAILURE = /out of memory|cannot allocate memory|bad_alloc|allocation failed|ENOMEM/i;

function limitOf(raw: HostRunResult, processHits: number): LimitHit | null {
  if (raw.cancelled) return 'cancelled';
  if (raw.outputExceeded) return 'output';
  if (processHits > 0) return 'processes';
  if (raw.timedOut) return 'time';
  if (raw.signal === 'SIGXFSZ') return 'file-size';
  // RLIMIT_AS makes allocations fail; programs report that themselves, so this is recognised from their output.
  if (raw.exitCode !== 0 && MEMORY_FAILURE.test(raw.output)) return 'memory';
  return null;
}

export async function runSandboxed(argv: readonly string[], opts: RunSandboxedOptions): Promise<SandboxResult> {
  const [program, ...args] = argv;
  if (!program) throw new CommandRefused('empty command: argv must name a program');
  if (program.includes('/') || !opts.allowed.includes(program)) {
    throw new CommandRefused(
      `command ${JSON.stringify(program)} is not allowed: the program must be a bare name from the allow-list ` +
        `(${opts.allowed.join(', ')}; WORKSPACE_ALLOWED_COMMANDS)`,
    );
  }
  const sandbox = opts.sandbox;
  if (sandbox.kind === 'none' && !opts.allowUnsandboxed) throw new CommandRefused(noSandboxMessage(sandbox.reason));
  const hostEnv = opts.env ?? process.env;
  const exe = resolveProgram(program, hostEnv, opts.root);
  if (!exe)
    throw new CommandRefused(`command ${JSON.stringify(program)} is allowed but was not found on the server's PATH`);
  const { limits } = opts;
  const run = {
    timeoutMs: limits.timeoutMs,
    maxOutputBytes: limits.maxOutputBytes,
    signal: opts.signal,
    onTick: opts.onTick,
  };

  if (sandbox.kind === 'none') {
    const env = { PATH: SANDBOX_PATH, HOME: opts.root, LANG: 'C.UTF-8', CI: 'true' };
    const raw = await runOnHost(exe, args, { ...run, cwd: opts.root, env });
    return toResult(raw, 0, 'none');
  }

  const allowedPrograms = opts.allowed.flatMap((name) => resolveProgram(name, hostEnv, opts.root) ?? []);
  const extraDirs = programDirs(allowedPrograms);
  const inner = [
    PRLIMIT ?? 'prlimit',
    `--as=${limits.memoryBytes}`,
    `--fsize=${limits.maxFileBytes}`,
    ...(process.getuid?.() === 0 ? [] : [`--nproc=${limits.maxProcesses}`]),
    '--',
    sandbox.bwrap,
    ...bwrapArgs(opts.root, limits, await fakeEtcDir(hostEnv), extraDirs),
    '--',
    exe,
    ...args,
  ];
  const cgroup = sandbox.cgroupParent ? await createChildCgroup(sandbox.cgroupParent, limits.maxProcesses) : undefined;
  try {
    // The shell joins the cgroup and then becomes prlimit → bwrap: nothing runs outside the limit, not even briefly.
    const [file, fileArgs] = cgroup
      ? [SH, ['-c', 'echo $$ > "$0" && exec "$@"', path.join(cgroup, 'cgroup.procs'), ...inner]]
      : [inner[0] as string, inner.slice(1)];
    const raw = await runOnHost(file, fileArgs, { ...run, cwd: opts.root, env: LAUNCHER_ENV });
    const hits = cgroup ? await processLimitHits(cgroup) : 0;
    return toResult(raw, hits, 'bubblewrap');
  } finally {
    if (cgroup) await destroyCgroup(cgroup);
  }
}

function toResult(raw: HostRunResult, processHits: number, sandbox: 'bubblewrap' | 'none'): SandboxResult {
  return {
    exitCode: raw.exitCode,
    signal: raw.signal,
    timedOut: raw.timedOut,
    limit: limitOf(raw, processHits),
    output: raw.output,
    truncated: raw.truncated,
    durationMs: raw.durationMs,
    sandbox,
  };
}
