/**
 * The platform's configuration, read once from the environment through one zod schema.
 * A bad variable stops start-up with a message that names it (see ConfigError).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { POOL_NAMES, type PoolName } from '../temporal/task-queues.js';
import { GateCommandsByTenantSchema } from './gate-commands.js';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const port = z.coerce
  .number({ error: 'expected a port number' })
  .int('expected an integer port')
  .min(1, 'expected a port between 1 and 65535')
  .max(65535, 'expected a port between 1 and 65535');

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'expected true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const duration = z
  .string()
  .regex(/^\d+(ms|s|m|h|d)$/, 'expected a duration such as 500ms, 30s, 5m, 2h or 7d')
  .transform(parseDuration);

/** The name of an environment variable that holds a secret (as tool servers' auth_secret_ref): never the secret. */
const secretRef = z
  .string()
  .regex(/^[A-Z][A-Z0-9_]{0,127}$/, 'expected the name of an environment variable (A-Z, 0-9, _), not its value');

/**
 * A variable holding JSON that `schema` checks: not JSON → `notJson`; the wrong shape → `wrongShape` with the issues.
 */
function jsonSetting<T extends z.ZodType>(schema: T, notJson: string, wrongShape: string) {
  return z.string().transform((value, ctx): z.output<T> => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      ctx.issues.push({ code: 'custom', message: notJson, input: value });
      return z.NEVER;
    }
    const checked = schema.safeParse(parsed);
    if (!checked.success) {
      const why = checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      ctx.issues.push({ code: 'custom', message: `${wrongShape}: ${why}`, input: value });
      return z.NEVER;
    }
    return checked.data;
  });
}

/**
 * Directories per tenant, as JSON: {"tenant-a": ["/srv/git/a"], "*": ["/srv/git/shared"]} ("*": every tenant).
 * Each root is an absolute path; what lies under it (after realpath) is allowed, nothing else.
 */
const rootsByTenant = jsonSetting(
  z.record(
    z.string().regex(/^(\*|[a-z0-9][a-z0-9-]{0,62})$/, 'a tenant id or *'),
    z.array(z.string().refine((p) => path.isAbsolute(p), 'an absolute path')).max(64),
  ),
  'expected JSON: {"<tenant or *>": ["/absolute/root", …]}',
  'expected {"<tenant or *>": ["/absolute/root", …]}',
);
export type RootsByTenant = Record<string, string[]>;

/** The pools of the registry (temporal/task-queues.ts); WORKER_QUEUES picks among them. */
const POOLS = POOL_NAMES;

/** Key material that never shows in logs, JSON or util.inspect; reveal() hands the bytes to the codec. */
export class SecretKey {
  readonly #bytes: Buffer;
  constructor(bytes: Buffer) {
    this.#bytes = bytes;
  }
  reveal(): Buffer {
    return this.#bytes;
  }
  toJSON(): string {
    return '[redacted]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'SecretKey [redacted]';
  }
}

const PAYLOAD_KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** "id:base64-key,id2:base64-key": each key exactly 32 bytes (AES-256), ids unique. Messages never quote a key. */
const payloadKeys = z.string().transform((value, ctx) => {
  const keys = new Map<string, SecretKey>();
  const fail = (message: string): typeof z.NEVER => {
    ctx.issues.push({ code: 'custom', message, input: '[redacted]' });
    return z.NEVER;
  };
  const entries = value
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (entries.length === 0) return fail('expected "id:base64-key[,id:base64-key…]"');
  for (const [index, entry] of entries.entries()) {
    const colon = entry.indexOf(':');
    const id = colon > 0 ? entry.slice(0, colon) : '';
    const encoded = colon > 0 ? entry.slice(colon + 1) : '';
    if (!PAYLOAD_KEY_ID.test(id) || !encoded) {
      return fail(`entry ${index + 1} is not "id:base64-key" (id: letters, digits, . _ -; at most 64)`);
    }
    if (keys.has(id)) return fail(`key id "${id}" appears more than once`);
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded)) return fail(`key "${id}" is not base64`);
    const bytes = Buffer.from(encoded, 'base64');
    if (bytes.length !== 32) {
      return fail(`key "${id}" is ${bytes.length} bytes once base64-decoded; expected 32 (AES-256)`);
    }
    keys.set(id, new SecretKey(bytes));
  }
  return keys;
});

/** An Ed25519 private key: base64 of its 32-byte seed. Messages never quote it. */
const approvalSeed = z.string().transform((value, ctx) => {
  const bytes = /^[A-Za-z0-9+/_-]+={0,2}$/.test(value.trim()) ? Buffer.from(value.trim(), 'base64') : Buffer.alloc(0);
  if (bytes.length !== 32) {
    ctx.issues.push({ code: 'custom', message: 'expected base64 of a 32-byte Ed25519 seed', input: '[redacted]' });
    return z.NEVER;
  }
  return new SecretKey(bytes);
});

/** "id:base64-32-byte-public-key,…" (Ed25519 public keys, raw). */
const approvalPublicKeys = z.string().transform((value, ctx) => {
  const keys: Record<string, string> = {};
  for (const entry of value
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const colon = entry.indexOf(':');
    const id = colon > 0 ? entry.slice(0, colon) : '';
    const encoded = entry.slice(colon + 1);
    if (!PAYLOAD_KEY_ID.test(id) || Buffer.from(encoded, 'base64').length !== 32 || keys[id] !== undefined) {
      ctx.issues.push({
        code: 'custom',
        message: `"${entry}" is not a new "id:base64-32-byte-public-key"`,
        input: value,
      });
      return z.NEVER;
    }
    keys[id] = Buffer.from(encoded, 'base64').toString('base64');
  }
  return keys;
});

export const ConfigSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  AGENCY_HOME: z.string().min(1).default(path.join(PROJECT_ROOT, '.agency')),

  API_HOST: z.string().min(1).default('127.0.0.1'),
  API_PORT: port.default(8080),
  API_BODY_LIMIT: z.string().default('1mb'),
  /** Requests per minute per API key or token subject. */
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(600),
  /** The tenant whose admins may create other tenants (`npm run bootstrap` creates it with the first admin key). */
  BOOTSTRAP_TENANT: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/)
    .default('default'),
  /**
   * JWT bearer tokens (besides API keys): HS256 with JWT_SECRET, or RS256/ES256 against JWT_JWKS_URL (an identity
   * provider). Issuer and audience are checked; the tenant and roles come from the named claims.
   */
  JWT_SECRET: z.string().min(32, 'at least 32 characters').optional(),
  JWT_JWKS_URL: z.string().url().optional(),
  JWT_ISSUER: z.string().min(1).optional(),
  JWT_AUDIENCE: z.string().min(1).default('agent-agency'),
  JWT_TENANT_CLAIM: z.string().min(1).default('tenant'),
  JWT_ROLES_CLAIM: z.string().min(1).default('roles'),

  DATABASE_URL: z
    .string()
    .url('expected a postgres:// URL')
    .refine((u) => /^postgres(ql)?:\/\//.test(u), 'expected a postgres:// URL')
    .default('postgres://postgres@127.0.0.1:5432/agency'),
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),

  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('agency'),
  TEMPORAL_UI_URL: z.string().url().default('http://localhost:8233'),
  /**
   * Tenants whose principals may decrypt this namespace's payloads through /api/v1/codec (the namespace holds every
   * tenant's workflows). Comma-separated; unset: BOOTSTRAP_TENANT only (api/routes/codec.ts).
   */
  CODEC_TENANTS: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,62}(,[a-z0-9][a-z0-9-]{0,62})*$/, 'expected tenant ids, comma-separated')
    .transform((s) => s.split(','))
    .optional(),
  /**
   * Development only (`npm run dev` sets it): the secret in the Web UI's codec endpoint path,
   * /api/v1/codec/dev/<token>, accepted only from loopback peers and the Web UI's origin (api/routes/codec.ts).
   */
  CODEC_DEV_TOKEN: z
    .string()
    .regex(/^[A-Za-z0-9_-]{32,128}$/, 'expected 32 to 128 base64url characters')
    .optional(),
  TEMPORAL_TLS: bool.default(false),
  TEMPORAL_TLS_CERT_PATH: z.string().optional(),
  TEMPORAL_TLS_KEY_PATH: z.string().optional(),
  TEMPORAL_TLS_CA_PATH: z.string().optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().optional(),
  TEMPORAL_API_KEY: z.string().optional(),
  /**
   * Payload encryption (temporal/codec.ts): "id:base64-32-byte-key,…" and the id new payloads are encrypted with.
   * Unset: payloads are stored in plaintext. Rotate by adding a key, making it active, and keeping the old one.
   */
  PAYLOAD_KEYS: payloadKeys.optional(),
  PAYLOAD_KEY_ID: z.string().regex(PAYLOAD_KEY_ID, 'expected a key id (letters, digits, . _ -)').optional(),
  /**
   * Migration only: with PAYLOAD_KEYS set, decode unencrypted payloads as they are (histories written before
   * encryption was turned on). Off: an unencrypted payload decodes into a tagged value workflows refuse.
   */
  PAYLOAD_ACCEPT_PLAINTEXT: bool.default(false),
  /**
   * Signed decisions (api/approval-signer.ts, workflows/task/decision-proof.ts): the API's Ed25519 key (base64 of the
   * 32-byte seed; the same secret on every API replica) and its id. Unset outside production: a key is made once under
   * SIGNING_KEY_DIR. APPROVAL_PUBLIC_KEYS: "id:base64-32-byte-public-key,…", retired keys whose decisions stay valid.
   */
  APPROVAL_SIGNING_KEY: approvalSeed.optional(),
  APPROVAL_SIGNING_KEY_ID: z.string().regex(PAYLOAD_KEY_ID, 'expected a key id (letters, digits, . _ -)').optional(),
  APPROVAL_PUBLIC_KEYS: approvalPublicKeys.optional(),
  /** How long a signed approval from POST /api/v1/tasks/:id/approval-token stays valid. */
  APPROVAL_TOKEN_TTL: duration.prefault('1h'),
  /** Prefix for every task queue, so several deployments can share one namespace. */
  TASK_QUEUE_PREFIX: z
    .string()
    .regex(/^[a-z0-9-]*$/, 'expected lowercase letters, digits and dashes')
    .default(''),

  WORKER_QUEUES: z
    .string()
    .default(POOLS.join(','))
    .transform((s) => s.split(',').map((q) => q.trim().replace(/^agency-/, '')))
    .pipe(z.array(z.enum(POOLS, { error: `expected a comma-separated list of: ${POOLS.join(', ')}` })).min(1)),
  /** A prebuilt workflow bundle (scripts/bundle-workflows.ts); without it the orchestration worker bundles at start. */
  WORKFLOW_BUNDLE_PATH: z.string().optional(),
  WORKER_SHUTDOWN_GRACE: duration.prefault('30s'),
  /**
   * A worker process serves GET /metrics on WORKER_METRICS_HOST:WORKER_METRICS_PORT (0 = off): its own metrics merged
   * with the Temporal SDK's, which the SDK exports on 127.0.0.1:WORKER_SDK_METRICS_PORT (0 = off; loopback only).
   */
  WORKER_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  WORKER_SDK_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9465),
  /** Circuit breakers around external services (model providers): consecutive failures that open one, and cool-down. */
  CIRCUIT_BREAKER_FAILURES: z.coerce.number().int().min(1).max(1000).default(5),
  CIRCUIT_BREAKER_COOLDOWN: duration.prefault('30s'),

  /**
   * Language models. `offline` (the default) is the embedded provider: no model calls; tasks carry a working spec
   * and judges are deterministic. `openai` covers every OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, LM Studio,
   * llama.cpp) through LLM_BASE_URL.
   */
  LLM_PROVIDER: z.enum(['offline', 'openai', 'anthropic']).default('offline'),
  LLM_BASE_URL: z.string().url().optional(),
  LLM_API_KEY: z.string().optional(),
  LLM_MODEL: z.string().min(1).optional(),
  LLM_TIMEOUT: duration.prefault('60s'),
  /** USD per million tokens, input and output: "3,15". Used to count cost against a task's budget. */
  LLM_PRICE_PER_MTOK: z
    .string()
    .regex(/^\d+(\.\d+)?,\d+(\.\d+)?$/, 'expected "<input>,<output>" USD per million tokens, e.g. "3,15"')
    .default('0,0')
    .transform((s) => {
      const [input, output] = s.split(',').map(Number);
      return { input: input ?? 0, output: output ?? 0 };
    }),

  /** Task timers, passed into each task by the API (tests keep them short: the time-skipping server is not used). */
  TASK_APPROVAL_TIMEOUT: duration.prefault('24h'),
  TASK_CLARIFICATION_TIMEOUT: duration.prefault('24h'),
  /** The council's time budget per round, a real timeout (CAWS: 5 s; allow more when judges call a model). */
  COUNCIL_CONSENSUS_TIMEOUT: duration.prefault('5s'),
  /**
   * A judge's vote that no council worker takes, or whose worker stops heartbeating, this long is asked again on another
   * worker (within the round's budget, so keep it well below COUNCIL_CONSENSUS_TIMEOUT). A vote still lost when the
   * budget runs out escalates to a person instead of counting as the judge's doubt.
   */
  COUNCIL_JUDGE_HANDOVER: duration.prefault('2s').refine((ms) => ms >= 100, 'expected at least 100ms'),
  TASK_MAX_ITERATIONS: z.coerce.number().int().min(1).max(5).default(5),
  /** A workspace activity without a heartbeat this long moves to another execution worker (its worker is gone). */
  EXECUTION_HANDOVER_TIMEOUT: duration.prefault('10s'),
  /** An execution worker removes its copy of a workspace it has not used this long (other workers served the rest). */
  WORKSPACE_IDLE_TTL: duration.prefault('6h'),
  /** The execution child continues as new after this many tool calls. */
  EXECUTION_CONTINUE_AS_NEW_AFTER: z.coerce.number().int().min(1).max(10_000).default(500),

  /** Where the Ed25519 key that signs council verdicts is kept (created on first use); default AGENCY_HOME/keys. */
  SIGNING_KEY_DIR: z.string().min(1).optional(),
  /**
   * Federation (issue 16). FEDERATION_KEY_DIR: where the decryptor pool keeps campaigns' CKKS secret keys (files of
   * mode 0600; default AGENCY_HOME/federation-keys); only the decryptor reads it, and in a deployment only the
   * decryptor's pod mounts it. FEDERATION_PARTICIPANTS: the participants a participant worker (workers/participant.ts)
   * serves, "id=data-source,…", each on its own queue agency-federation-<id>.
   */
  FEDERATION_KEY_DIR: z.string().min(1).optional(),
  FEDERATION_PARTICIPANTS: z.string().max(65536).default(''),
  /** How often the audit chain's head is signed into a checkpoint (the Temporal Schedule `audit-checkpoint`). */
  AUDIT_CHECKPOINT_INTERVAL: duration.prefault('15m'),

  /** Programs the execution pool may start for a spec's commands and gates. */
  EXECUTION_ALLOWED_COMMANDS: z
    .string()
    .default('node,npm,npx,git,make,pnpm,yarn,python3,pytest,go,cargo,true,false')
    .transform((s) =>
      s
        .split(',')
        .map((c) => c.trim())
        .filter(Boolean),
    ),
  EXECUTION_COMMAND_TIMEOUT: duration.prefault('5m'),
  /**
   * Commands (steps, gates, run_command) run in a bubblewrap sandbox: no network, only the workspace writable, no
   * secrets, process/memory/time/output limits. Without a usable sandbox they are refused, unless this is true.
   */
  SANDBOX_ALLOW_UNSANDBOXED: bool.default(false),
  /** The bubblewrap binary; default: `bwrap` on PATH, else the cached copy (mcp/workspace-server/bubblewrap.ts). */
  BWRAP_PATH: z.string().min(1).optional(),
  SANDBOX_MAX_PROCESSES: z.coerce.number().int().min(8).max(4096).default(256),
  SANDBOX_MEMORY_BYTES: z.coerce
    .number()
    .int()
    .min(64 * 1024 * 1024)
    .default(4 * 1024 * 1024 * 1024),
  /**
   * Repositories (common/repositories.ts): the roots under which a tenant may register a `file://` repository, per
   * tenant as JSON ({"tenant": ["/srv/git/tenant"], "*": [...]}). Unset: no file:// repositories.
   */
  REPOSITORY_FILE_ROOTS: rootsByTenant.default({}),
  /**
   * The migration path for a task's `workspace` (a local path on the workers' disk): refused unless it lies under one
   * of these roots for the tenant (same JSON shape). Unset: every `workspace` is refused; register a repository.
   */
  LOCAL_WORKSPACE_ROOTS: rootsByTenant.default({}),
  /**
   * The tenant's default commands for the gates the tier policy requires (common/gate-commands.ts), as JSON
   * ({"<tenant or *>": {"tests": {"run": ["node", "--test", "--test-reporter=junit", "--test-reporter-destination={out}/junit.xml"]}}}).
   * A repository's registration may name its own. Unset: a required gate without a registered command fails unless waived.
   */
  TENANT_GATE_COMMANDS: jsonSetting(
    GateCommandsByTenantSchema,
    'expected JSON: {"<tenant or *>": {"tests": {"run": [...]}}}',
    'expected {"<tenant or *>": {"<gate kind>": {"run": [...]}}}',
  ).default({}),
  /** Where isolated task workspaces are created (one directory per task, removed afterwards). */
  WORKSPACES_DIR: z.string().optional(),

  /**
   * The blob store (common/blob-store): large binary objects by reference. `postgres` (the default) keeps them as
   * chunk rows of BLOB_CHUNK_BYTES in this database; `s3` in an S3-compatible bucket (S3_*). Either way the catalog
   * and the references are in PostgreSQL.
   */
  BLOB_BACKEND: z.enum(['postgres', 's3']).default('postgres'),
  BLOB_CHUNK_BYTES: z.coerce
    .number()
    .int()
    .min(4 * 1024)
    .max(64 * 1024 * 1024)
    .default(1024 * 1024),
  /** A blob nothing references is removed once it has been unreferenced (untouched) this long. */
  BLOB_RETENTION_AGE: duration.prefault('7d'),
  /** How often the Temporal Schedule `blob-retention` sweeps (temporal/schedules.ts). */
  BLOB_RETENTION_INTERVAL: duration.prefault('1h'),
  /** The largest ONNX file POST /api/v1/models/:name/versions accepts (streamed into the blob store, never buffered). */
  MODEL_UPLOAD_MAX_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(1024 * 1024 * 1024),
  /** S3-compatible object storage (BLOB_BACKEND=s3). No endpoint: AWS itself. */
  S3_ENDPOINT: z.string().url().optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_BUCKET: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
      'expected an S3 bucket name (3-63 lower-case letters, digits, . and -)',
    )
    .optional(),
  /** Path-style URLs (http://host/bucket/key), which MinIO and most self-hosted servers need. */
  S3_FORCE_PATH_STYLE: bool.default(true),
  /** Multipart part size for large puts (S3 requires at least 5 MiB for every part but the last). */
  S3_PART_BYTES: z.coerce
    .number()
    .int()
    .min(5 * 1024 * 1024)
    .max(5 * 1024 * 1024 * 1024)
    .default(5 * 1024 * 1024),
  /**
   * The credentials by reference, as tool servers' auth_secret_ref: the names of the environment variables that hold
   * them (read with s3Credentials), never the keys themselves. Both unset: the AWS SDK's default provider chain.
   */
  S3_ACCESS_KEY_ID_REF: secretRef.default('AWS_ACCESS_KEY_ID'),
  S3_SECRET_ACCESS_KEY_REF: secretRef.default('AWS_SECRET_ACCESS_KEY'),

  /**
   * Model serving (activities/inference/serving). An inference-pool process serves predictions on
   * SERVING_HOST:SERVING_PORT (0 = off), for the API only: the API authorises and forwards to SERVING_URL (in
   * Kubernetes the inference pool's Service). SERVING_TOKEN, when set on both, is required on every forwarded call.
   * Each process re-reads the serving weights every SERVING_RELOAD_INTERVAL besides being notified (LISTEN/NOTIFY).
   */
  SERVING_URL: z.string().url().default('http://127.0.0.1:8090'),
  SERVING_HOST: z.string().min(1).default('127.0.0.1'),
  SERVING_PORT: z.coerce.number().int().min(0).max(65535).default(8090),
  SERVING_TOKEN: z.string().min(32, 'at least 32 characters').optional(),
  SERVING_RELOAD_INTERVAL: duration.prefault('5s'),
});

export type Config = z.output<typeof ConfigSchema> & { SIGNING_KEY_DIR: string };
export type Pool = PoolName;
export const ALL_POOLS: readonly Pool[] = POOLS;

export class ConfigError extends Error {
  constructor(readonly problems: { variable: string; message: string }[]) {
    super('Invalid configuration:\n' + problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n'));
    this.name = 'ConfigError';
  }
}

/** Variables whose values an error message must never repeat (a *_REF that is refused may be a pasted secret). */
const SECRET_VARIABLES = new Set([
  'PAYLOAD_KEYS',
  'APPROVAL_SIGNING_KEY',
  'TEMPORAL_API_KEY',
  'LLM_API_KEY',
  'JWT_SECRET',
  'CODEC_DEV_TOKEN',
  'SERVING_TOKEN',
  'S3_ACCESS_KEY_ID_REF',
  'S3_SECRET_ACCESS_KEY_REF',
]);

/** Reads the configuration from an environment (process.env by default). Throws ConfigError naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(ConfigSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const parsed = ConfigSchema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const variable = String(issue.path[0] ?? '(config)');
        const got = SECRET_VARIABLES.has(variable) ? undefined : input[variable];
        return {
          variable,
          message: got === undefined ? issue.message : `${issue.message} (got ${JSON.stringify(got)})`,
        };
      }),
    );
  }
  const config = {
    ...parsed.data,
    SIGNING_KEY_DIR: parsed.data.SIGNING_KEY_DIR ?? path.join(parsed.data.AGENCY_HOME, 'keys'),
  };
  if (config.LLM_PROVIDER !== 'offline' && !config.LLM_MODEL) {
    throw new ConfigError([{ variable: 'LLM_MODEL', message: `required when LLM_PROVIDER is ${config.LLM_PROVIDER}` }]);
  }
  if (config.LLM_PROVIDER === 'openai' && !config.LLM_API_KEY && !config.LLM_BASE_URL) {
    throw new ConfigError([
      { variable: 'LLM_API_KEY', message: 'required for the OpenAI API (or set LLM_BASE_URL for a local server)' },
    ]);
  }
  if (config.JWT_SECRET && config.JWT_JWKS_URL) {
    throw new ConfigError([
      { variable: 'JWT_JWKS_URL', message: 'set either JWT_SECRET (HS256) or JWT_JWKS_URL, not both' },
    ]);
  }
  if (config.TEMPORAL_TLS_CERT_PATH && !config.TEMPORAL_TLS_KEY_PATH) {
    throw new ConfigError([
      { variable: 'TEMPORAL_TLS_KEY_PATH', message: 'required when TEMPORAL_TLS_CERT_PATH is set' },
    ]);
  }
  if (config.BLOB_BACKEND === 's3' && !config.S3_BUCKET) {
    throw new ConfigError([{ variable: 'S3_BUCKET', message: 'required when BLOB_BACKEND is s3' }]);
  }
  if (Boolean(config.APPROVAL_SIGNING_KEY) !== Boolean(config.APPROVAL_SIGNING_KEY_ID)) {
    throw new ConfigError([
      {
        variable: config.APPROVAL_SIGNING_KEY ? 'APPROVAL_SIGNING_KEY_ID' : 'APPROVAL_SIGNING_KEY',
        message: 'APPROVAL_SIGNING_KEY and APPROVAL_SIGNING_KEY_ID are set together',
      },
    ]);
  }
  if (config.PAYLOAD_KEYS && !config.PAYLOAD_KEY_ID) {
    throw new ConfigError([{ variable: 'PAYLOAD_KEY_ID', message: 'required when PAYLOAD_KEYS is set' }]);
  }
  if (config.PAYLOAD_KEY_ID && !config.PAYLOAD_KEYS?.has(config.PAYLOAD_KEY_ID)) {
    throw new ConfigError([
      {
        variable: 'PAYLOAD_KEY_ID',
        message: config.PAYLOAD_KEYS
          ? `"${config.PAYLOAD_KEY_ID}" is not one of the PAYLOAD_KEYS ids (${[...config.PAYLOAD_KEYS.keys()].join(', ')})`
          : 'set only together with PAYLOAD_KEYS',
      },
    ]);
  }
  return config;
}

/** Milliseconds in a duration string such as "500ms", "30s", "5m", "2h", "7d". */
export function parseDuration(value: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(value);
  if (!match) throw new Error(`not a duration: ${value}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}

/**
 * The S3 credentials, read from the environment variables the configuration names (S3_ACCESS_KEY_ID_REF,
 * S3_SECRET_ACCESS_KEY_REF). Undefined when neither is set (the AWS SDK's default chain applies); one without the other
 * is a ConfigError that names the missing variable, never a value.
 */
export function s3Credentials(
  config: Pick<Config, 'S3_ACCESS_KEY_ID_REF' | 'S3_SECRET_ACCESS_KEY_REF'>,
  env: NodeJS.ProcessEnv = process.env,
): { accessKeyId: string; secretAccessKey: string } | undefined {
  const accessKeyId = env[config.S3_ACCESS_KEY_ID_REF] || undefined;
  const secretAccessKey = env[config.S3_SECRET_ACCESS_KEY_REF] || undefined;
  if (!accessKeyId && !secretAccessKey) return undefined;
  if (!accessKeyId || !secretAccessKey) {
    const missing = accessKeyId ? config.S3_SECRET_ACCESS_KEY_REF : config.S3_ACCESS_KEY_ID_REF;
    throw new ConfigError([{ variable: missing, message: 'the other S3 credential is set, this one is not' }]);
  }
  return { accessKeyId, secretAccessKey };
}

/** Entry points call this: prints a ConfigError readably and exits, rethrows anything else. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}
