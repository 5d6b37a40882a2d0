/**
 * `npm run dev`: the whole platform on this machine, and a demo task carried end to end.
 *
 * 1. Temporal: reuse the server at TEMPORAL_ADDRESS, or start the dev server (building the pinned CLI if needed).
 * 2. PostgreSQL: create the database and apply migrations.
 * 3. Start the worker pools (one process, every pool) and the API.
 * 4. Copy samples/calculator (a repository with a failing test) into a fresh git repository, submit the demo task
 *    through the API, print where to watch it, and follow it to its end.
 * 5. Keep running until Ctrl-C, which stops everything this command started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { loadConfigOrExit, PROJECT_ROOT } from '../common/config.js';
import { createDb, migrate } from '../common/db.js';
import { bootstrapAdminKey } from './bootstrap.js';
import { ensureBubblewrap } from '../mcp/workspace-server/bubblewrap.js';
import { createTemporalClient } from '../temporal/connection.js';
import { isTemporalUp, startDevServer, type DevServer } from '../temporal/dev-server.js';
import { CODEC_DEV_PATH, devCodecEndpoint } from '../api/routes/codec.js';
import { ensureAuditCheckpointSchedule, ensureBlobRetentionSchedule } from '../temporal/schedules.js';

const run = promisify(execFile);
// The demo submits a local `workspace` under AGENCY_HOME/demo: the one local root this session allows (the migration
// path; register repositories otherwise). The API and the workers inherit it. An operator's own setting wins.
process.env.LOCAL_WORKSPACE_ROOTS ||= JSON.stringify({
  '*': [path.join(process.env.AGENCY_HOME || path.join(PROJECT_ROOT, '.agency'), 'demo')],
});
// The demo repository's commands for the gates the tier policy requires (tests, coverage, mutation), as an operator
// would register them for the tenant. An operator's own setting wins.
process.env.TENANT_GATE_COMMANDS ||= JSON.stringify({
  '*': JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'samples', 'calculator.gates.json'), 'utf8')) as unknown,
});
const config = loadConfigOrExit();
const say = (line: string): void => void process.stdout.write(`${line}\n`);
const children: ChildProcess[] = [];
let temporal: DevServer | undefined;
let stopping = false;

async function stopAll(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say('\nstopping…');
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
            setTimeout(() => child.kill('SIGKILL'), 20_000).unref();
          }),
      ),
    );
    if (temporal?.started) {
      await temporal.stop();
      // The dev session's codec token lives as long as the server whose Web UI carries it.
      await rm(path.join(config.AGENCY_HOME, `codec-dev-token-${config.TEMPORAL_ADDRESS.split(':')[1] ?? '7233'}`), {
        force: true,
      });
      say('stopped the Temporal dev server (its state is kept in ' + config.AGENCY_HOME + ')');
    }
  }
  process.exit(code);
}
process.once('SIGINT', () => void stopAll(0));
process.once('SIGTERM', () => void stopAll(0));

// The API's and the workers' logs are JSON lines (as in production, where they go to stdout). Here they go to files
// under .agency/logs/, so the demo's progress stays readable; warnings and errors are also shown, one line each.
const logDir = path.join(config.AGENCY_HOME, 'logs');
const LEVELS: Record<number, string> = { 40: 'warn', 50: 'error', 60: 'fatal' };

function readable(name: string, line: string): string | undefined {
  try {
    const entry = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
    const level = LEVELS[entry.level ?? 0];
    // The SDK's notice that a workflows-only or activities-only pool does not poll the other kind: by design.
    if (!level || /^No (activities|workflows) registered/.test(entry.msg ?? '')) return undefined;
    return `[${name}] ${level}: ${entry.msg ?? ''}${entry.err?.message ? ` (${entry.err.message})` : ''}`;
  } catch {
    return `[${name}] ${line}`; // not JSON: a crash's stack trace, say
  }
}

function startChild(name: string, script: string): ChildProcess {
  const file = path.join(logDir, `${name}.log`);
  const out = createWriteStream(file, { flags: 'a' });
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: PROJECT_ROOT,
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout, child.stderr]) {
    stream.pipe(out, { end: false });
    createInterface({ input: stream }).on('line', (line) => {
      const shown = readable(name, line);
      if (shown) process.stderr.write(`${shown}\n`);
    });
  }
  child.once('exit', (code, signal) => {
    out.end();
    if (!stopping) {
      say(`${name} exited (${code ?? signal}); its log is ${file}; stopping`);
      void stopAll(1);
    }
  });
  children.push(child);
  return child;
}

/**
 * The dev session's codec token (api/routes/codec.ts). A server this command starts gets a fresh one, kept (0600) beside
 * its state while it runs, so a later `npm run dev` that reuses the running server gives the API the token its Web UI
 * was started with.
 */
async function devCodecToken(address: string, file: string): Promise<string> {
  if (await isTemporalUp(address)) {
    const kept = (await readFile(file, 'utf8').catch(() => '')).trim();
    if (/^[A-Za-z0-9_-]{32,128}$/.test(kept)) return kept;
    say(`note: the running Temporal server's Web UI was not started by npm run dev: it may not decrypt payloads`);
  }
  const token = randomBytes(32).toString('base64url');
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, token, { mode: 0o600 });
  return token;
}

async function waitFor(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function prepareDemoWorkspace(): Promise<string> {
  const dir = path.join(config.AGENCY_HOME, 'demo', `calculator-${Date.now()}`);
  await mkdir(path.dirname(dir), { recursive: true });
  await cp(path.join(PROJECT_ROOT, 'samples', 'calculator'), dir, { recursive: true });
  const git = (...args: string[]): Promise<unknown> => run('git', args, { cwd: dir });
  await git('init', '--quiet', '--initial-branch=main');
  await git('-c', 'user.name=Agent Agency demo', '-c', 'user.email=demo@agent-agency.local', 'add', '.');
  await git(
    '-c',
    'user.name=Agent Agency demo',
    '-c',
    'user.email=demo@agent-agency.local',
    'commit',
    '--quiet',
    '-m',
    'calculator with a failing test',
  );
  return dir;
}

try {
  const bwrap = await ensureBubblewrap({ log: (line) => console.log(`  ${line}`) });
  console.log(
    bwrap.found
      ? `command sandbox: bubblewrap ${bwrap.version} (${bwrap.path})`
      : `command sandbox unavailable, commands will be refused: ${bwrap.reason}`,
  );
  const [host = '127.0.0.1', port = '7233'] = config.TEMPORAL_ADDRESS.split(':');
  const apiBase = `http://${config.API_HOST === '0.0.0.0' ? '127.0.0.1' : config.API_HOST}:${config.API_PORT}`;
  // Encrypted payloads: the Web UI decrypts them through the API's codec endpoint, with this dev session's token in
  // the endpoint's path (the CLI's UI sends no token or cookie; api/routes/codec.ts accepts it from loopback only).
  const codecToken = config.PAYLOAD_KEYS
    ? await devCodecToken(`${host}:${port}`, path.join(config.AGENCY_HOME, `codec-dev-token-${port}`))
    : undefined;
  if (codecToken) process.env.CODEC_DEV_TOKEN = codecToken; // the API child reads it
  temporal = await startDevServer({
    host,
    port: Number(port),
    namespace: config.TEMPORAL_NAMESPACE,
    stateDir: config.AGENCY_HOME,
    log: say,
    // The UI is served where TEMPORAL_UI_URL says (its origin is the one the codec's CORS allows), default 8233.
    uiPort: Number(new URL(config.TEMPORAL_UI_URL).port) || undefined,
    codecEndpoint: codecToken ? devCodecEndpoint(apiBase, codecToken) : undefined,
  });
  const applied = await migrate(config.DATABASE_URL);
  // An admin key for this session (expires in 7 days); the API needs one for everything but /health.
  const keyDb = createDb(config.DATABASE_URL);
  const apiKey = await bootstrapAdminKey(keyDb, config.BOOTSTRAP_TENANT, `dev-${Date.now()}`, 7);
  await keyDb.end();
  const auth = { 'x-api-key': apiKey };
  say(applied.length ? `database: applied ${applied.join(', ')}` : 'database: up to date');

  await mkdir(logDir, { recursive: true });
  startChild('workers', 'workers/main.ts');
  startChild('api', 'api/server.ts');
  say(`logs:   ${path.join(logDir, 'workers.log')}, ${path.join(logDir, 'api.log')} (JSON lines; warnings shown here)`);
  const api = `http://${config.API_HOST === '0.0.0.0' ? '127.0.0.1' : config.API_HOST}:${config.API_PORT}`;
  await waitFor(`${api}/health`, 60_000);
  say(`API:    ${api}  (health: ${api}/health)`);
  if (codecToken) {
    say(
      `codec:  the Web UI decrypts payloads through ${api}${CODEC_DEV_PATH}/… (this dev session's token, loopback and the UI's origin only)`,
    );
  }
  say(`admin API key for this session (tenant ${config.BOOTSTRAP_TENANT}, 7 days): ${apiKey}`);
  say(`        curl -H 'x-api-key: ${apiKey}' ${api}/api/v1/tasks`);
  const scheduler = await createTemporalClient(config);
  try {
    const schedule = await ensureAuditCheckpointSchedule(scheduler, config);
    say(
      `audit:  schedule ${schedule.scheduleId} signs the audit chain head every ${config.AUDIT_CHECKPOINT_INTERVAL / 1000} s`,
    );
    const retention = await ensureBlobRetentionSchedule(scheduler, config);
    say(
      `blobs:  schedule ${retention.scheduleId} removes blobs unreferenced for ${config.BLOB_RETENTION_AGE / 3_600_000} h, every ${config.BLOB_RETENTION_INTERVAL / 1000} s`,
    );
  } finally {
    await scheduler.connection.close();
  }

  const workspace = await prepareDemoWorkspace();
  say(`demo workspace: ${workspace} (samples/calculator: average() is off by one, one test fails)`);
  const post = async (url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${api}${url}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  // Strict mode: after the council accepts the plan, a person approves it before anything is executed.
  const submitted = await post('/api/v1/tasks', {
    title: 'Fix average() in the calculator sample',
    workspace,
    mode: 'strict',
  });
  if (submitted.status !== 202) throw new Error(`the API refused the demo task: ${JSON.stringify(submitted.body)}`);
  const task = submitted.body as { id: string; workflowId: string; webUi: string };
  say(`task:   ${api}/api/v1/tasks/${task.id}`);
  say(`Web UI: ${task.webUi}`);

  interface View {
    status: string;
    temporalStatus: string;
    step?: string;
    progress?: { pendingApproval?: { hash: string; reasons: string[] } };
    result?: {
      reason?: string;
      filesChanged: string[];
      gates: { name: string; passed: boolean }[];
      verdicts: { phase: string; verdict: { decision: string; score: number }; signature: { keyId: string } }[];
      diffRef?: { sha256: string };
    };
    failure?: string;
  }
  let last = '';
  let approved = false;
  for (;;) {
    const state = (await (await fetch(`${api}/api/v1/tasks/${task.id}`, { headers: auth })).json()) as View;
    const line = `  ${state.status}${state.step ? `: ${state.step}` : ''}`;
    if (line !== last) say((last = line));
    const pending = state.progress?.pendingApproval;
    if (state.status === 'awaiting_approval' && pending && !approved) {
      say(`  approving through the API: POST ${api}/api/v1/tasks/${task.id}/approve {"hash":"${pending.hash}"}`);
      const decision = await post(`/api/v1/tasks/${task.id}/approve`, {
        hash: pending.hash,
        reason: 'demo: plan reviewed',
      });
      say(`  -> ${decision.status} ${JSON.stringify(decision.body)}`);
      approved = decision.status === 200;
    }
    // The workflow reports its final status a moment before it closes with its result.
    if (state.temporalStatus !== 'RUNNING') {
      if (state.result) {
        for (const v of state.result.verdicts) {
          say(
            `  council on the ${v.phase}: ${v.verdict.decision} (score ${v.verdict.score}, signed by key ${v.signature.keyId})`,
          );
        }
        say(
          `  gates: ${state.result.gates.map((g) => `${g.name} ${g.passed ? 'passed' : 'FAILED'}`).join(', ') || 'none'}`,
        );
        say(`  files changed: ${state.result.filesChanged.join(', ') || 'none'}`);
        if (state.result.diffRef)
          say(`  diff: ${api}/api/v1/tasks/${task.id}/artifacts/${state.result.diffRef.sha256}`);
        if (state.result.reason) say(`  reason: ${state.result.reason}`);
      }
      if (state.failure) say(`  failure: ${state.failure}`);
      break;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  say('\nThe platform keeps running: submit more tasks to the API, watch them in the Web UI. Ctrl-C stops everything.');
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  await stopAll(1);
}
