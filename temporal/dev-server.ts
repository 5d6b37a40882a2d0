/**
 * The Temporal dev server, started by the project itself: `temporal server start-dev` with a persistent SQLite
 * file (runs survive a restart), the Web UI, namespace `agency` and the custom search attributes registered.
 * Idempotent: when a server already answers on the port, it is reused, not started twice.
 *
 *   npx tsx temporal/dev-server.ts up       start (or reuse) in the background; prints address and Web UI
 *   npx tsx temporal/dev-server.ts down     stop the server this project started
 *   npx tsx temporal/dev-server.ts status
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Connection } from '@temporalio/client';
import { logTail, processAlive, sizeOf, stopPid } from '../common/processes.js';
import { ensureTemporalCli } from './cli.js';
import { setupNamespace } from './setup.js';

export interface DevServerOptions {
  host?: string;
  port?: number;
  uiPort?: number;
  /** false: no Web UI (tests). */
  ui?: boolean;
  /** The Web UI's remote codec (`--ui-codec-endpoint`), e.g. http://127.0.0.1:8080/api/v1/codec: decrypted payloads. */
  codecEndpoint?: string;
  namespace?: string;
  /** Directory for the SQLite file, pid file and log. */
  stateDir: string;
  log?: (line: string) => void;
  /** The CLI to run; default: ensureTemporalCli() (found on PATH or in the cache, else built). */
  cli?: string;
  /** How long a started server may stay silent before its first log line (default 180 s: a cold start on a busy machine). */
  firstOutputTimeoutMs?: number;
  /** How long after its first log line the server has to answer (default 60 s). */
  answerTimeoutMs?: number;
  /**
   * SQLite pragmas (`--sqlite-pragma`). Default: TEMPORAL_SQLITE_PRAGMAS (comma-separated), else
   * journal_mode=wal,synchronous=normal: a write-ahead log, synced at checkpoints, so writers stop waiting on an fsync
   * each. A killed server loses nothing committed; an OS crash may lose the last transactions (a dev server's state).
   */
  sqlitePragmas?: string[];
}

const DEFAULT_SQLITE_PRAGMAS = 'journal_mode=wal,synchronous=normal';

function sqlitePragmasOf(opts: DevServerOptions): string[] {
  const listed = opts.sqlitePragmas ?? (process.env.TEMPORAL_SQLITE_PRAGMAS ?? DEFAULT_SQLITE_PRAGMAS).split(',');
  return listed.map((p) => p.trim()).filter(Boolean);
}

export interface DevServer {
  address: string;
  uiUrl?: string;
  namespace: string;
  /** true when this call started the server (false: an existing server was reused). */
  started: boolean;
  pid?: number;
  stop(): Promise<void>;
}

/** Whether something accepts TCP connections at host:port (no gRPC state involved). */
function acceptsTcp(address: string, timeoutMs: number): Promise<boolean> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = net.connect({ host: address.slice(0, i), port: Number(address.slice(i + 1)) });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Answers whether a Temporal frontend responds at the address. Every probe uses a fresh gRPC subchannel: grpc-js
 * otherwise shares one per address across connections, and the exponential back-off it accumulated while the
 * server was not listening yet (up to 120 s) would keep a server that is up looking down for a minute and more.
 */
export async function isTemporalUp(address: string, timeoutMs = 1_500): Promise<boolean> {
  if (!(await acceptsTcp(address, timeoutMs))) return false;
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({
      address,
      connectTimeout: timeoutMs,
      channelArgs: { 'grpc.use_local_subchannel_pool': 1 },
    });
    await connection.withDeadline(Date.now() + timeoutMs, () => connection!.workflowService.getSystemInfo({}));
    return true;
  } catch {
    return false;
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(file, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Waits until the server answers. Two clocks: a started server that has printed nothing yet is still loading (a
 * cold binary on a busy machine), so it gets `firstOutputTimeoutMs`; once it has printed its first line it has
 * `answerTimeoutMs` to answer. Throws with the tail of its log when it exits or either clock runs out.
 */
async function awaitAnswer(
  address: string,
  pid: number,
  logFile: string,
  offset: number,
  limits: { firstOutputTimeoutMs: number; answerTimeoutMs: number },
): Promise<void> {
  const spawnedAt = Date.now();
  let firstOutputAt: number | undefined;
  const failure = async (what: string): Promise<Error> =>
    new Error(`the Temporal dev server ${what}; its log ends with:\n${await logTail(logFile, offset)}`);
  while (!(await isTemporalUp(address))) {
    if (!processAlive(pid)) throw await failure('exited during start-up');
    if (firstOutputAt === undefined && (await sizeOf(logFile)) > offset) firstOutputAt = Date.now();
    if (firstOutputAt === undefined && Date.now() - spawnedAt > limits.firstOutputTimeoutMs)
      throw await failure(`printed nothing within ${limits.firstOutputTimeoutMs / 1000} s of its start`);
    if (firstOutputAt !== undefined && Date.now() - firstOutputAt > limits.answerTimeoutMs)
      throw await failure(
        `did not answer at ${address} within ${limits.answerTimeoutMs / 1000} s of its first log line`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 7233;
  const uiPort = opts.uiPort ?? 8233;
  const ui = opts.ui ?? true;
  const namespace = opts.namespace ?? 'agency';
  const log = opts.log ?? (() => undefined);
  const address = `${host}:${port}`;
  const uiUrl = ui ? `http://localhost:${uiPort}` : undefined;
  const pidFile = path.join(opts.stateDir, `temporal-${port}.pid`);

  await mkdir(opts.stateDir, { recursive: true });

  if (await isTemporalUp(address)) {
    log(`Temporal already answers at ${address}; reusing it`);
    const connection = await Connection.connect({ address });
    try {
      await setupNamespace(connection, namespace);
    } finally {
      await connection.close();
    }
    return { address, uiUrl, namespace, started: false, stop: () => Promise.resolve() };
  }

  const cli = opts.cli ?? (await ensureTemporalCli({ log }));
  // The CLI picks its HTTP API and metrics ports itself, free when it looks; another process can bind one before the
  // server does (the test suite runs many servers at once). That start fails, and a second one picks other ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(cli, opts, { host, port, uiPort, ui, namespace, log, address, uiUrl, pidFile });
    } catch (err) {
      const taken = otherPortTaken((err as Error).message, [port, uiPort]);
      if (taken === undefined || attempt >= 3) throw err;
      log(`port ${taken}, which the dev server picked for itself, was taken as it started; starting it again`);
    }
  }
}

/** The port in a "bind: address already in use" failure, when it is none of `ours` (undefined otherwise). */
export function otherPortTaken(message: string, ours: readonly number[]): number | undefined {
  const port = Number(/listen tcp [^\s]*:(\d+): bind: address already in use/.exec(message)?.[1]);
  return Number.isInteger(port) && !ours.includes(port) ? port : undefined;
}

interface LaunchPlan {
  host: string;
  port: number;
  uiPort: number;
  ui: boolean;
  namespace: string;
  log: (line: string) => void;
  address: string;
  uiUrl: string | undefined;
  pidFile: string;
}

/** Spawns the dev server and waits until it answers with the namespace set up; stops it again if it does not. */
async function launch(
  cli: string,
  opts: DevServerOptions,
  { host, port, uiPort, ui, namespace, log, address, uiUrl, pidFile }: LaunchPlan,
): Promise<DevServer> {
  const args = [
    'server',
    'start-dev',
    '--ip',
    host,
    '--port',
    String(port),
    '--db-filename',
    path.join(opts.stateDir, `temporal-${port}.sqlite`),
    '--namespace',
    namespace,
    '--log-level',
    'warn',
    ...(ui ? ['--ui-port', String(uiPort)] : ['--headless']),
    ...(ui && opts.codecEndpoint ? ['--ui-codec-endpoint', opts.codecEndpoint] : []),
    ...sqlitePragmasOf(opts).flatMap((p) => ['--sqlite-pragma', p]),
  ];
  const logPath = path.join(opts.stateDir, `temporal-${port}.log`);
  const offset = await sizeOf(logPath); // the log is appended to across restarts: this start's lines begin here
  const logFile = await open(logPath, 'a');
  const child = spawn(cli, args, { detached: true, stdio: ['ignore', logFile.fd, logFile.fd] });
  await logFile.close();
  child.unref();
  const pid = child.pid;
  if (!pid) throw new Error(`could not start ${cli}`);
  await writeFile(pidFile, String(pid));
  log(`started Temporal dev server (pid ${pid}) at ${address}${uiUrl ? `, Web UI ${uiUrl}` : ''}`);

  try {
    await awaitAnswer(address, pid, logPath, offset, {
      firstOutputTimeoutMs: opts.firstOutputTimeoutMs ?? 180_000,
      answerTimeoutMs: opts.answerTimeoutMs ?? 60_000,
    });
    const connection = await Connection.connect({ address });
    try {
      await setupNamespace(connection, namespace);
    } finally {
      await connection.close();
    }
  } catch (err) {
    // A failed start stops what it started: nothing keeps serving on the port after its state is gone.
    await stopPid(pid, 5_000);
    await rm(pidFile, { force: true });
    throw err;
  }

  return {
    address,
    uiUrl,
    namespace,
    started: true,
    pid,
    stop: async () => {
      await stopPid(pid);
      await rm(pidFile, { force: true });
    },
  };
}

/** Stops the server whose pid file this project wrote for the port. */
export async function stopDevServer(stateDir: string, port = 7233): Promise<boolean> {
  const pidFile = path.join(stateDir, `temporal-${port}.pid`);
  const pid = await readPid(pidFile);
  if (!pid) return false;
  await stopPid(pid);
  await rm(pidFile, { force: true });
  return true;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { loadConfigOrExit } = await import('../common/config.js');
  const config = loadConfigOrExit();
  const [, port = '7233'] = config.TEMPORAL_ADDRESS.split(':');
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const command = process.argv[2] ?? 'up';
  if (command === 'up') {
    const server = await startDevServer({
      port: Number(port),
      namespace: config.TEMPORAL_NAMESPACE,
      stateDir: config.AGENCY_HOME,
      log,
    });
    process.stdout.write(`Temporal: ${server.address} (namespace ${server.namespace})\nWeb UI:   ${server.uiUrl}\n`);
  } else if (command === 'down') {
    log((await stopDevServer(config.AGENCY_HOME, Number(port))) ? 'stopped' : 'no dev server started by this project');
  } else if (command === 'status') {
    const up = await isTemporalUp(config.TEMPORAL_ADDRESS);
    process.stdout.write(`${config.TEMPORAL_ADDRESS}: ${up ? 'up' : 'down'}\n`);
    process.exitCode = up ? 0 : 1;
  } else {
    log('usage: dev-server.ts up|down|status');
    process.exitCode = 2;
  }
}
