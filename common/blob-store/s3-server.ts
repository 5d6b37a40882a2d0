/**
 * The S3-compatible server the project obtains itself (tests, the benchmark, a local S3 backend): versitygw, an
 * S3 gateway over a POSIX directory, found or built like the Temporal CLI (temporal/cli.ts).
 *
 * Order: $VERSITYGW, `versitygw` on PATH, the cached build, then `go install` of the pinned version
 * (CGO_ENABLED=0, GOBIN = the cache). The cache ($XDG_CACHE_HOME or ~/.cache, under agency/versitygw/<version>)
 * survives fresh clones, so a machine builds it once: a 61 MB binary, measured on 2 busy cores at 2.5 minutes with the
 * Go modules already downloaded and 4.8 minutes from nothing (about 3 CPU-minutes either way; see the README).
 *
 *   node --import tsx common/blob-store/s3-server.ts          prints the path of the binary (building it if needed)
 *   node --import tsx common/blob-store/s3-server.ts up DIR [PORT]   runs a server on DIR until Ctrl-C
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { ensureGoTool, type EnsureOptions, type GoTool } from '../go-tool.js';
import { freePort, logTail, processAlive, sizeOf, stopPid } from '../processes.js';

/** Pinned: a tagged release whose go.mod has no replace directive, so `go install` builds it from the module proxy. */
export const VERSITYGW_VERSION = 'v1.8.0';

const VERSITYGW: GoTool = {
  label: 'S3-compatible server (versitygw)',
  binary: 'versitygw',
  module: 'github.com/versity/versitygw/cmd/versitygw',
  version: VERSITYGW_VERSION,
  envVar: 'VERSITYGW',
  releases: 'https://github.com/versity/versitygw/releases',
  minGo: '1.25',
};

export class S3ServerUnavailable extends Error {
  override name = 'S3ServerUnavailable';
}

/** Returns the path of a usable versitygw, building the pinned one into the cache if none is found. */
export function ensureS3Server(opts: EnsureOptions = {}): Promise<string> {
  return ensureGoTool(VERSITYGW, opts, (message) => new S3ServerUnavailable(message));
}

export interface S3ServerOptions {
  /** Where the objects (dir/data), their metadata (dir/meta) and the server's log live. Created if missing. */
  dir: string;
  /** Default: a free port chosen by the OS. */
  port?: number;
  host?: string;
  region?: string;
  /** The root user's credentials; default: random for this server. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** The binary; default: ensureS3Server() (found on PATH or in the cache, else built). */
  binary?: string;
  log?: (line: string) => void;
  /** How long the server has to answer a signed ListBuckets after it was spawned (default 60 s). */
  answerTimeoutMs?: number;
}

export interface S3Server {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

/** Whether an S3 server answers a signed ListBuckets with these credentials (a real S3 call, not a TCP probe). */
export async function isS3Up(
  endpoint: string,
  region: string,
  credentials: { accessKeyId: string; secretAccessKey: string },
  timeoutMs = 2_000,
): Promise<boolean> {
  const client = new S3Client({ endpoint, region, credentials, forcePathStyle: true, maxAttempts: 1 });
  try {
    await client.send(new ListBucketsCommand({}), { abortSignal: AbortSignal.timeout(timeoutMs) });
    return true;
  } catch {
    return false;
  } finally {
    client.destroy();
  }
}

/**
 * Starts versitygw's POSIX backend on `dir` and waits until it answers a signed ListBuckets. A failed start stops
 * what it started and throws with the tail of the server's log.
 */
export async function startS3Server(opts: S3ServerOptions): Promise<S3Server> {
  const host = opts.host ?? '127.0.0.1';
  const region = opts.region ?? 'us-east-1';
  const log = opts.log ?? (() => undefined);
  const credentials = opts.credentials ?? {
    accessKeyId: `agency${randomBytes(6).toString('hex')}`,
    secretAccessKey: randomBytes(24).toString('base64url'),
  };
  const port = opts.port || (await freePort(host));
  const endpoint = `http://${host}:${port}`;
  const dataDir = path.join(opts.dir, 'data');
  // Metadata (content type, user metadata, ETags) in a sidecar directory rather than extended attributes, which
  // not every filesystem offers (overlayfs in containers, older tmpfs).
  const metaDir = path.join(opts.dir, 'meta');
  await mkdir(dataDir, { recursive: true });
  await mkdir(metaDir, { recursive: true });
  const binary = opts.binary ?? (await ensureS3Server({ log }));

  const logPath = path.join(opts.dir, `versitygw-${port}.log`);
  const offset = await sizeOf(logPath);
  const logFile = await open(logPath, 'a');
  const args = ['--port', `${host}:${port}`, '--region', region, '--quiet', 'posix', '--sidecar', metaDir, dataDir];
  // Credentials through the environment, not argv (which `ps` shows to every user).
  const child = spawn(binary, args, {
    detached: true,
    stdio: ['ignore', logFile.fd, logFile.fd],
    env: {
      ...process.env,
      ROOT_ACCESS_KEY_ID: credentials.accessKeyId,
      ROOT_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    },
  });
  await logFile.close();
  child.unref();
  const pid = child.pid;
  if (!pid) throw new S3ServerUnavailable(`could not start ${binary}`);
  log(`started versitygw (pid ${pid}) at ${endpoint}, objects in ${dataDir}`);

  const answerTimeoutMs = opts.answerTimeoutMs ?? 60_000;
  const deadline = Date.now() + answerTimeoutMs;
  try {
    while (!(await isS3Up(endpoint, region, credentials))) {
      const what = !processAlive(pid)
        ? 'exited during start-up'
        : Date.now() > deadline
          ? `did not answer a signed ListBuckets at ${endpoint} within ${answerTimeoutMs / 1000} s`
          : undefined;
      if (what) {
        throw new S3ServerUnavailable(`versitygw ${what}; its log ends with:\n${await logTail(logPath, offset)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await stopPid(pid, 5_000);
    throw err;
  }

  return { endpoint, region, credentials, pid, logFile: logPath, stop: () => stopPid(pid) };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const log = (l: string): void => void process.stderr.write(`${l}\n`);
  const [command, dir, port] = process.argv.slice(2);
  if (command === 'up' && dir) {
    const server = await startS3Server({ dir, port: port ? Number(port) : undefined, log });
    process.stdout.write(
      `S3 endpoint: ${server.endpoint} (region ${server.region}, path-style)\n` +
        `access key:  ${server.credentials.accessKeyId}\nsecret key:  ${server.credentials.secretAccessKey}\n`,
    );
    const stop = (): void => void server.stop().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    setInterval(() => undefined, 1 << 30); // keeps the process alive until a signal
  } else if (command === undefined) {
    await ensureS3Server({ log }).then(
      (p) => process.stdout.write(`${p}\n`),
      (err: Error) => {
        process.stderr.write(`${err.message}\n`);
        process.exitCode = 1;
      },
    );
  } else {
    log('usage: s3-server.ts            print the path of versitygw (building it if needed)');
    log('       s3-server.ts up DIR [PORT]   run a server on DIR until interrupted');
    process.exitCode = 2;
  }
}
