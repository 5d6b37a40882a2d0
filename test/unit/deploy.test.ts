/**
 * Static checks of deploy/: the Kubernetes manifests (every YAML document in deploy/kubernetes) and the Dockerfile.
 * No cluster and no Docker engine: each assertion stands for a mistake that would otherwise surface only on a
 * user's cluster (a pool nobody runs, a config value the processes reject, a Service with no endpoints, ...).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { createApp } from '../../api/app.js';
import { ConfigSchema, loadConfig, parseDuration, PROJECT_ROOT, type Config } from '../../common/config.js';
import type { Db } from '../../common/db.js';
import { createLogger } from '../../common/logger.js';
import { POOL_QUEUES } from '../../temporal/task-queues.js';
import { ASSETS, buildFiles } from '../../scripts/build.js';

// ---- the shapes read from the manifests (only the fields the checks use) -------------------------------------

type Labels = Record<string, string>;
interface Metadata {
  name: string;
  namespace?: string;
  labels?: Labels;
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: Metadata;
  /** The file it came from (added here, not part of the manifest). */
  file: string;
}
interface EnvVar {
  name: string;
  value?: unknown;
  valueFrom?: unknown;
}
interface Probe {
  httpGet?: { path?: string; port: number | string };
  tcpSocket?: { port: number | string };
  exec?: unknown;
  grpc?: unknown;
  timeoutSeconds?: number;
}
interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
}
interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  securityContext?: SecurityContext;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: SecurityContext;
  terminationGracePeriodSeconds?: number;
  serviceAccountName?: string;
  volumes?: { name: string }[];
}
interface Workload extends Manifest {
  spec: {
    replicas?: number;
    selector?: { matchLabels?: Labels };
    template: { metadata?: { labels?: Labels; annotations?: Record<string, string> }; spec: PodSpec };
  };
}
interface ConfigMapOrSecret extends Manifest {
  data?: Record<string, unknown>;
  stringData?: Record<string, unknown>;
}
interface Service extends Manifest {
  spec: { selector?: Labels; ports: { name?: string; port: number; targetPort?: number | string }[] };
}
interface Pdb extends Manifest {
  spec: { selector: { matchLabels?: Labels }; minAvailable?: number | string; maxUnavailable?: number | string };
}
interface Hpa extends Manifest {
  spec: { scaleTargetRef: { kind: string; name: string }; minReplicas?: number; maxReplicas: number };
}
interface NetworkPolicy extends Manifest {
  spec: {
    podSelector: { matchLabels?: Labels; matchExpressions?: unknown[] };
    policyTypes?: string[];
    ingress?: { from?: unknown[]; ports?: { port?: number | string; protocol?: string }[] }[];
  };
}

// ---- loading ---------------------------------------------------------------------------------------------------

const DEPLOY_DIR = path.join(PROJECT_ROOT, 'deploy');
const K8S_DIR = path.join(DEPLOY_DIR, 'kubernetes');
const NAMESPACE = 'agent-agency';
const SECRET_NAME = 'agent-agency-secrets';
const POOLS = Object.keys(POOL_QUEUES) as (keyof typeof POOL_QUEUES)[];

const yamlFiles = readdirSync(K8S_DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();
const parseProblems: string[] = [];

function parseFile(file: string): Manifest[] {
  const out: Manifest[] = [];
  for (const doc of YAML.parseAllDocuments(readFileSync(path.join(K8S_DIR, file), 'utf8'))) {
    if (doc.errors.length > 0) {
      parseProblems.push(...doc.errors.map((e) => `${file}: ${e.message}`));
      continue;
    }
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue; // an empty document (a trailing ---)
    if (typeof value !== 'object' || Array.isArray(value)) {
      parseProblems.push(`${file}: a document that is not a mapping`);
      continue;
    }
    out.push({ ...(value as Omit<Manifest, 'file'>), file });
  }
  return out;
}

const byFile = new Map(yamlFiles.map((f) => [f, parseFile(f)]));
const isExample = (file: string): boolean => file.endsWith('.example.yaml') || file.endsWith('.example.yml');
const KUSTOMIZATION = 'kustomization.yaml';
const kustomization = YAML.parse(readFileSync(path.join(K8S_DIR, KUSTOMIZATION), 'utf8')) as {
  kind?: string;
  namespace?: string;
  resources?: string[];
} | null;
/** What `kubectl apply -k` creates: every document of every file except the kustomization and the examples. */
const manifests = [...byFile.entries()]
  .filter(([file]) => file !== KUSTOMIZATION && !isExample(file))
  .flatMap(([, docs]) => docs);
const examples = [...byFile.entries()].filter(([file]) => isExample(file)).flatMap(([, docs]) => docs);

const ofKind = <T extends Manifest>(kind: string): T[] => manifests.filter((m) => m.kind === kind) as T[];
const deployments = ofKind<Workload>('Deployment');
const workloads = [...deployments, ...ofKind<Workload>('Job')];
const configMaps = ofKind<ConfigMapOrSecret>('ConfigMap');
const services = ofKind<Service>('Service');
const exampleSecret = examples.find(
  (m): m is ConfigMapOrSecret => m.kind === 'Secret' && m.metadata.name === SECRET_NAME,
);

const containersOf = (w: Workload): Container[] => [
  ...(w.spec.template.spec.initContainers ?? []),
  ...w.spec.template.spec.containers,
];
const allContainers = workloads.flatMap((w) => containersOf(w).map((c) => ({ workload: w, container: c })));
const where = (w: Workload, c: Container): string => `${w.kind} ${w.metadata.name}, container ${c.name}`;

// ---- the Dockerfile --------------------------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  rest: string;
}
interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

const dockerfileText = readFileSync(path.join(DEPLOY_DIR, 'Dockerfile'), 'utf8');

/** Instructions of a Dockerfile: comment lines dropped, backslash continuations joined. */
function dockerInstructions(text: string): Instruction[] {
  const logical: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.trimEnd();
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' ';
      continue;
    }
    current += line;
    if (current.trim()) logical.push(current.trim());
    current = '';
  }
  if (current.trim()) logical.push(current.trim());
  return logical.map((l) => {
    const [keyword = '', ...rest] = l.split(/\s+/);
    return { keyword: keyword.toUpperCase(), rest: rest.join(' ') };
  });
}

function dockerStages(instructions: Instruction[]): Stage[] {
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'ARG' && stages.length === 0) {
      const [name = '', value = ''] = ins.rest.split('=');
      args.set(name.trim(), value.trim());
    } else if (ins.keyword === 'FROM') {
      const words = ins.rest.split(/\s+/).filter((w) => !w.startsWith('--'));
      const from = (words[0] ?? '').replace(/\$\{?(\w+)\}?/g, (_, name: string) => args.get(name) ?? '');
      const as = words.findIndex((w) => w.toUpperCase() === 'AS');
      stages.push({ from, name: as >= 0 ? words[as + 1] : undefined, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(ins);
    }
  }
  return stages;
}

const stages = dockerStages(dockerInstructions(dockerfileText));
const finalStage = stages.at(-1);
const stageNamed = (name: string): Stage | undefined => stages.find((s) => s.name === name);

/** The stage and every stage it is built FROM, nearest first. */
function lineage(stage: Stage): Stage[] {
  const parent = stageNamed(stage.from);
  return parent && parent !== stage ? [stage, ...lineage(parent)] : [stage];
}

function workdirOf(stage: Stage): string {
  let dir = '/';
  for (const s of lineage(stage).reverse()) {
    for (const ins of s.instructions) {
      if (ins.keyword === 'WORKDIR') dir = path.posix.resolve(dir, ins.rest.trim());
    }
  }
  return dir;
}

/** The JSON exec form of the last ENTRYPOINT or CMD of a stage (or the stage it comes from). */
function execForm(stage: Stage, keyword: 'ENTRYPOINT' | 'CMD'): string[] {
  for (const s of lineage(stage)) {
    const found = s.instructions.filter((i) => i.keyword === keyword).at(-1);
    if (found) return JSON.parse(found.rest) as string[];
  }
  return [];
}

const BUNDLE_COMMAND = /node\s+--import\s+tsx\s+scripts\/bundle-workflows\.ts\s+(\S+)/;
/** The compile step (scripts/build.ts): <workdir>/dist/<dir>/<file>.js from each source tsconfig.build.json names. */
const COMPILE_COMMAND = /\bnpm\s+run\s+build:compile\b/;

// ---- the compiled program: dist/ as `npm run build:compile` writes it ------------------------------------------

/** What the compile step writes under dist/ (relative to it), with the repository file each comes from (or none). */
const compiledOutputs = new Map<string, string | undefined>([
  ...buildFiles().map(({ source, output }): [string, string] => [
    path.relative(path.join(PROJECT_ROOT, 'dist'), output).split(path.sep).join('/'),
    path.relative(PROJECT_ROOT, source).split(path.sep).join('/'),
  ]),
  ['package.json', undefined],
]);
/** The repository file a dist/ file comes from: its source, or itself when it is a copied asset. */
function originOf(distRelative: string): string | undefined {
  if (compiledOutputs.has(distRelative)) return compiledOutputs.get(distRelative);
  const asset = ASSETS.some((a) => distRelative === a || distRelative.startsWith(`${a}/`));
  return asset ? distRelative : undefined;
}

/** `dist/api/server.js` → `api/server.ts`: the source of an entry point the containers run. */
const sourceOfEntry = (entry: string): string | undefined =>
  entry.startsWith('dist/') ? originOf(entry.slice('dist/'.length)) : undefined;
const API_ENTRY = 'dist/api/server.js';
const WORKER_ENTRY = 'dist/workers/main.js';
const MIGRATE_ENTRY = 'dist/scripts/migrate.js';
/** The built-in workspace MCP server, which the execution pool spawns (mcp/workspace-server/launch.ts). */
const WORKSPACE_SERVER_ENTRY = 'dist/mcp/workspace-server/main.js';

const isContextDirectory = (relative: string): boolean =>
  statSync(path.join(PROJECT_ROOT, relative), { throwIfNoEntry: false })?.isDirectory() ?? false;

/** A COPY/ADD instruction: its --from stage (if any), sources and destination (shell form only). */
function copyOf(ins: Instruction): { from?: string; sources: string[]; dest: string } | undefined {
  if (ins.keyword !== 'COPY' && ins.keyword !== 'ADD') return undefined;
  const words = ins.rest.split(/\s+/);
  const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
  const paths = words.filter((w) => !w.startsWith('--'));
  const dest = paths.pop();
  return dest === undefined ? undefined : { from, sources: paths, dest };
}

/**
 * Whether a stage's filesystem holds `file` (absolute): copied from the build context (the repository root),
 * copied --from another stage, written by the workflow-bundle or the compile RUN, or inherited through FROM.
 */
function stageHas(stage: Stage, file: string): boolean {
  const workdir = workdirOf(stage);
  const dist = path.posix.join(workdir, 'dist');
  for (const ins of stage.instructions) {
    const built = ins.keyword === 'RUN' ? BUNDLE_COMMAND.exec(ins.rest) : null;
    if (built?.[1] && path.posix.resolve(workdir, built[1]) === file) return true;
    if (ins.keyword === 'RUN' && COMPILE_COMMAND.test(ins.rest) && file.startsWith(`${dist}/`)) {
      const relative = path.posix.relative(dist, file);
      if (compiledOutputs.has(relative) && compiledOutputs.get(relative) === undefined) return true; // generated
      const origin = originOf(relative);
      if (origin !== undefined && stageHas(stage, path.posix.resolve(workdir, origin))) return true;
    }
    const copy = copyOf(ins);
    if (!copy) continue;
    const dest = path.posix.resolve(workdir, copy.dest);
    const intoDirectory = copy.dest.endsWith('/') || copy.sources.length > 1;
    const source = copy.from === undefined ? undefined : stageNamed(copy.from);
    if (copy.from !== undefined && !source) continue; // an external image: not modelled
    for (const src of copy.sources) {
      const inContext = (relative: string): boolean => existsSync(path.join(PROJECT_ROOT, relative));
      const exists = (p: string): boolean => (source ? stageHas(source, path.posix.resolve('/', p)) : inContext(p));
      // A directory's contents land in dest; a file lands at dest (or in it, when dest is a directory).
      if (file.startsWith(dest + '/') && (source || isContextDirectory(src))) {
        if (exists(path.posix.join(src, path.posix.relative(dest, file)))) return true;
      }
      const target = intoDirectory ? path.posix.join(dest, path.posix.basename(src)) : dest;
      if (file === target && exists(src)) return true;
    }
  }
  const parent = stageNamed(stage.from);
  return parent !== undefined && parent !== stage && stageHas(parent, file);
}

// ---- what a container runs and sees ----------------------------------------------------------------------------

/** The argv a container runs: Kubernetes `command` replaces the image ENTRYPOINT, `args` the image CMD. */
function argvOf(c: Container): string[] {
  if (!finalStage) return [...(c.command ?? []), ...(c.args ?? [])];
  const entrypoint = c.command ?? execForm(finalStage, 'ENTRYPOINT');
  const args = c.args ?? (c.command ? [] : execForm(finalStage, 'CMD'));
  return [...entrypoint, ...args];
}
const runs = (c: Container, entry: string): boolean => argvOf(c).includes(entry);

const secretStandIn = (): Record<string, string> =>
  Object.fromEntries(
    Object.entries(exampleSecret?.stringData ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string'),
  );

/**
 * The environment a container starts with: its envFrom (the ConfigMap, and the example Secret standing in for the
 * real one), then its env, which wins over envFrom as in Kubernetes.
 */
function environmentOf(c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const cm = from.configMapRef && configMaps.find((m) => m.metadata.name === from.configMapRef?.name);
    if (cm) Object.assign(env, cm.data);
    if (from.secretRef?.name === SECRET_NAME) Object.assign(env, secretStandIn());
  }
  for (const e of c.env ?? []) if (typeof e.value === 'string') env[e.name] = e.value;
  return env;
}

const apiDeployments = deployments.filter((d) => containersOf(d).some((c) => runs(c, API_ENTRY)));
const workerDeployments = deployments.filter((d) => containersOf(d).some((c) => runs(c, WORKER_ENTRY)));
const apiDeployment = apiDeployments[0];
const apiContainer = apiDeployment ? containersOf(apiDeployment).find((c) => runs(c, API_ENTRY)) : undefined;
const podLabels = (w: Workload): Labels => w.spec.template.metadata?.labels ?? {};
const selects = (selector: Labels | undefined, labels: Labels): boolean =>
  selector !== undefined &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/** The container port a Service targetPort / probe port / NetworkPolicy port names, as a number. */
function containerPort(c: Container, port: number | string | undefined): number | undefined {
  const found = (c.ports ?? []).find((p) => p.containerPort === port || (p.name !== undefined && p.name === port));
  return found?.containerPort;
}

/** A Kubernetes resource quantity ("500m", "2", "512Mi", "1Gi") as a plain number. */
function quantity(value: string | number): number {
  if (typeof value === 'number') return value;
  const match = /^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(value);
  const factor = {
    '': 1,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
  }[match?.[2] ?? ''];
  if (!match || factor === undefined) throw new Error(`not a Kubernetes quantity: ${value}`);
  return Number(match[1]) * factor;
}

// ---- the checks ------------------------------------------------------------------------------------------------

describe('deploy/kubernetes', () => {
  it('every YAML document parses and names its apiVersion, kind and metadata.name', () => {
    expect(parseProblems).toEqual([]);
    for (const m of [...manifests, ...examples]) {
      expect(m.apiVersion, m.file).toEqual(expect.any(String));
      expect(m.kind, m.file).toEqual(expect.any(String));
      expect(m.metadata?.name, m.file).toEqual(expect.any(String));
    }
    expect(workloads.length).toBeGreaterThan(0);
  });

  it('kustomization.yaml lists every manifest file except *.example.yaml, and every listed resource exists', () => {
    expect(kustomization?.kind).toBe('Kustomization');
    const listed = kustomization?.resources ?? [];
    const expected = yamlFiles.filter((f) => f !== KUSTOMIZATION && !isExample(f));
    expect([...listed].sort()).toEqual(expected);
    for (const resource of listed) expect(existsSync(path.join(K8S_DIR, resource)), resource).toBe(true);
    expect(new Set(listed).size, 'a resource listed twice').toBe(listed.length);
  });

  it(`every object lives in the ${NAMESPACE} namespace, which the kustomization creates`, () => {
    expect(kustomization?.namespace).toBe(NAMESPACE);
    expect(manifests.filter((m) => m.kind === 'Namespace').map((m) => m.metadata.name)).toEqual([NAMESPACE]);
    for (const m of [...manifests, ...examples].filter((m) => m.kind !== 'Namespace')) {
      expect(m.metadata.namespace, `${m.kind} ${m.metadata.name}`).toBe(NAMESPACE);
    }
  });

  it('object names are unique per kind', () => {
    const keys = manifests.map((m) => `${m.kind}/${m.metadata.name}`);
    expect(keys.filter((k, i) => keys.indexOf(k) !== i)).toEqual([]);
  });

  it.each(POOLS)(
    'when the %s pool is deployed, then exactly one Deployment runs dist/workers/main.js with WORKER_QUEUES set to it alone',
    (pool) => {
      const matching = deployments.filter((d) =>
        containersOf(d).some((c) => (c.env ?? []).some((e) => e.name === 'WORKER_QUEUES' && e.value === pool)),
      );
      expect(matching.map((d) => d.metadata.name)).toHaveLength(1);
      const container = containersOf(matching[0]!).find((c) => runs(c, WORKER_ENTRY));
      expect(container, `the container that sets WORKER_QUEUES runs ${WORKER_ENTRY}`).toBeDefined();
      // `--queues` on the command line would win over WORKER_QUEUES (workers/main.ts).
      expect(argvOf(container!)).not.toContain('--queues');
      expect(loadConfig(environmentOf(container!)).WORKER_QUEUES).toEqual([pool]);
      expect(argvOf(container!).slice(-2)).toEqual(['node', WORKER_ENTRY]);
    },
  );

  it('every worker Deployment runs a pool of POOL_QUEUES, so none is left over after a pool is removed', () => {
    expect(workerDeployments.length).toBe(POOLS.length);
    for (const d of workerDeployments) {
      for (const c of containersOf(d).filter((c) => runs(c, WORKER_ENTRY))) {
        const queues = (c.env ?? []).find((e) => e.name === 'WORKER_QUEUES')?.value;
        expect(POOLS, `${where(d, c)} must set WORKER_QUEUES to one pool`).toContain(queues);
      }
    }
  });

  it('the API runs dist/api/server.js and the migration Job dist/scripts/migrate.js, compiled from existing sources', () => {
    expect(apiDeployments.map((d) => d.metadata.name)).toEqual([expect.any(String)]);
    expect(argvOf(apiContainer!).slice(-2)).toEqual(['node', API_ENTRY]);
    const jobs = ofKind<Workload>('Job');
    expect(jobs.flatMap(containersOf).some((c) => runs(c, MIGRATE_ENTRY))).toBe(true);
    for (const { workload, container } of allContainers) {
      const argv = argvOf(container);
      // Compiled JavaScript, as node runs it: no TypeScript loader, no .ts entry.
      expect(argv, where(workload, container)).not.toContain('tsx');
      expect(
        argv.filter((a) => a.endsWith('.ts')),
        where(workload, container),
      ).toEqual([]);
      const entry = argv[argv.indexOf('node') + 1];
      expect(entry, `${where(workload, container)} runs node dist/<entry>.js`).toMatch(/^dist\/.+\.js$/);
      const source = sourceOfEntry(entry!);
      expect(source, `${entry} is an output of tsconfig.build.json`).toMatch(/\.ts$/);
      expect(existsSync(path.join(PROJECT_ROOT, source!)), `${source} exists in the repository`).toBe(true);
    }
  });

  it('every environment variable set in a container, the ConfigMap or the example Secret is a ConfigSchema key', () => {
    const known = new Set(Object.keys(ConfigSchema.shape));
    const names = [
      ...allContainers.flatMap(({ container }) => (container.env ?? []).map((e) => e.name)),
      ...configMaps.flatMap((m) => Object.keys(m.data ?? {})),
      ...Object.keys(exampleSecret?.stringData ?? {}),
      ...Object.keys(exampleSecret?.data ?? {}),
    ];
    expect(names.length).toBeGreaterThan(0);
    expect(names.filter((n) => !known.has(n))).toEqual([]);
  });

  it('ConfigMap values and env values are strings, as the Kubernetes API requires', () => {
    for (const m of configMaps) {
      for (const [key, value] of Object.entries(m.data ?? {})) expect(typeof value, `${m.file} ${key}`).toBe('string');
    }
    for (const { workload, container } of allContainers) {
      for (const e of container.env ?? []) {
        if (e.valueFrom === undefined) expect(typeof e.value, `${where(workload, container)} ${e.name}`).toBe('string');
      }
    }
  });

  it('the ConfigMap with a DATABASE_URL passes ConfigSchema validation, and so does every container environment', () => {
    expect(configMaps.map((m) => m.metadata.name)).toHaveLength(1);
    const databaseUrl = secretStandIn().DATABASE_URL;
    expect(databaseUrl, 'the example Secret shows DATABASE_URL').toEqual(expect.any(String));
    const data = configMaps[0]!.data as Record<string, string>;
    expect(() => loadConfig({ ...data, DATABASE_URL: databaseUrl })).not.toThrow();
    for (const { workload, container } of allContainers) {
      expect(() => loadConfig(environmentOf(container)), where(workload, container)).not.toThrow();
    }
  });

  it('every pod uses the ServiceAccount, ConfigMap and Secret the manifests define', () => {
    const accounts = ofKind('ServiceAccount').map((m) => m.metadata.name);
    expect(exampleSecret, `secret.example.yaml defines the Secret ${SECRET_NAME}`).toBeDefined();
    for (const w of workloads) {
      expect(accounts).toContain(w.spec.template.spec.serviceAccountName);
      for (const c of containersOf(w)) {
        const refs = c.envFrom ?? [];
        expect(refs.map((r) => r.secretRef?.name).filter(Boolean), where(w, c)).toEqual([SECRET_NAME]);
        for (const r of refs.filter((r) => r.configMapRef)) {
          expect(configMaps.map((m) => m.metadata.name)).toContain(r.configMapRef?.name);
        }
      }
    }
  });

  it('every container has cpu and memory requests and limits, and no request exceeds its limit', () => {
    for (const { workload, container } of allContainers) {
      const { requests = {}, limits = {} } = container.resources ?? {};
      for (const resource of ['cpu', 'memory']) {
        expect(requests[resource], `${where(workload, container)} requests.${resource}`).toBeDefined();
        expect(limits[resource], `${where(workload, container)} limits.${resource}`).toBeDefined();
      }
      for (const [resource, request] of Object.entries(requests)) {
        const limit = limits[resource];
        if (limit !== undefined) {
          expect(quantity(request), `${where(workload, container)} ${resource}`).toBeLessThanOrEqual(quantity(limit));
        }
      }
    }
  });

  it('every container runs as non-root, without privilege escalation or capabilities, on a read-only root', () => {
    for (const { workload, container } of allContainers) {
      const pod = workload.spec.template.spec.securityContext ?? {};
      const own = container.securityContext ?? {};
      const at = where(workload, container);
      expect(own.runAsNonRoot ?? pod.runAsNonRoot, at).toBe(true);
      expect(own.runAsUser ?? pod.runAsUser, at).not.toBe(0);
      expect(own.privileged ?? false, at).toBe(false);
      expect(own.allowPrivilegeEscalation, at).toBe(false);
      expect(own.capabilities?.drop, at).toContain('ALL');
      expect(own.capabilities?.add ?? [], at).toEqual([]);
      expect(own.readOnlyRootFilesystem, at).toBe(true);
    }
  });

  it('every container with a read-only root mounts a writable /tmp, and every mount names a volume of its pod', () => {
    for (const { workload, container } of allContainers) {
      const volumes = (workload.spec.template.spec.volumes ?? []).map((v) => v.name);
      const mounts = container.volumeMounts ?? [];
      for (const m of mounts) expect(volumes, `${where(workload, container)} mounts ${m.name}`).toContain(m.name);
      if (container.securityContext?.readOnlyRootFilesystem) {
        expect(
          mounts.map((m) => m.mountPath),
          `${where(workload, container)}: temporary files and AGENCY_HOME go to /tmp`,
        ).toContain('/tmp');
      }
    }
  });

  it('the execution pool mounts a writable volume at its WORKSPACES_DIR', () => {
    const execution = workerDeployments.find((d) =>
      containersOf(d).some((c) => environmentOf(c).WORKER_QUEUES === 'execution'),
    );
    const container = containersOf(execution!).find((c) => runs(c, WORKER_ENTRY))!;
    const workspaces = loadConfig(environmentOf(container)).WORKSPACES_DIR;
    expect(workspaces, 'WORKSPACES_DIR is set for the execution pool').toBeDefined();
    expect((container.volumeMounts ?? []).map((m) => m.mountPath)).toContain(workspaces);
  });

  it('every image is pinned to a tag other than latest, and every container runs the same image', () => {
    const images = allContainers.map(({ container }) => container.image);
    for (const image of images) {
      expect(image).toEqual(expect.any(String));
      const lastSegment = image!.split('/').at(-1)!;
      const tag = lastSegment.includes(':') ? lastSegment.split(':').at(-1) : undefined;
      expect(image!.includes('@sha256:') || (tag !== undefined && tag !== 'latest'), image).toBe(true);
    }
    expect(new Set(images).size, 'the API, the workers and the migration share one release').toBe(1);
  });

  it('worker pods get a terminationGracePeriodSeconds longer than their WORKER_SHUTDOWN_GRACE, which is set', () => {
    expect(workerDeployments.length).toBeGreaterThan(0);
    for (const d of workerDeployments) {
      const graceSeconds = d.spec.template.spec.terminationGracePeriodSeconds ?? 30; // the Kubernetes default
      for (const c of containersOf(d).filter((c) => runs(c, WORKER_ENTRY))) {
        const env = environmentOf(c);
        expect(env.WORKER_SHUTDOWN_GRACE, `${where(d, c)} sets WORKER_SHUTDOWN_GRACE`).toBeDefined();
        expect(graceSeconds * 1000, where(d, c)).toBeGreaterThan(parseDuration(env.WORKER_SHUTDOWN_GRACE!));
        expect(graceSeconds * 1000).toBeGreaterThan(loadConfig(env).WORKER_SHUTDOWN_GRACE);
      }
    }
  });

  it('every Deployment selects its own pods and no other workload’s pods', () => {
    for (const d of deployments) {
      expect(selects(d.spec.selector?.matchLabels, podLabels(d)), d.metadata.name).toBe(true);
      for (const other of workloads.filter((w) => w !== d)) {
        expect(
          selects(d.spec.selector?.matchLabels, podLabels(other)),
          `${d.metadata.name} vs ${other.metadata.name}`,
        ).toBe(false);
      }
    }
  });

  it('the API Service selects only the API pods and targets the port the API listens on', () => {
    const api = services.filter((s) => selects(s.spec.selector, podLabels(apiDeployment!)));
    expect(api).toHaveLength(1);
    for (const other of workloads.filter((w) => w !== apiDeployment)) {
      expect(selects(api[0]!.spec.selector, podLabels(other)), other.metadata.name).toBe(false);
    }
    const config = loadConfig(environmentOf(apiContainer!));
    expect(api[0]!.spec.ports.length).toBeGreaterThan(0);
    for (const port of api[0]!.spec.ports) {
      const target = containerPort(apiContainer!, port.targetPort ?? port.port);
      expect(target, `Service port ${port.port} targets a port the API container exposes`).toBeDefined();
      expect(target).toBe(config.API_PORT);
    }
    // A pod is reached on its own address, never on loopback.
    expect(['127.0.0.1', 'localhost', '::1']).not.toContain(config.API_HOST);
  });

  it('the PodDisruptionBudget and the HorizontalPodAutoscaler govern the API Deployment', () => {
    const pdbs = ofKind<Pdb>('PodDisruptionBudget');
    expect(pdbs.filter((p) => selects(p.spec.selector.matchLabels, podLabels(apiDeployment!)))).toHaveLength(1);
    const replicas = apiDeployment!.spec.replicas ?? 1;
    expect(replicas).toBeGreaterThanOrEqual(2);
    for (const p of pdbs) {
      // minAvailable equal to the replica count would block every node drain.
      if (typeof p.spec.minAvailable === 'number') expect(p.spec.minAvailable).toBeLessThan(replicas);
    }
    const hpas = ofKind<Hpa>('HorizontalPodAutoscaler');
    expect(hpas).toHaveLength(1);
    expect(hpas[0]!.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: apiDeployment!.metadata.name });
    expect(hpas[0]!.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpas[0]!.spec.maxReplicas).toBeGreaterThanOrEqual(hpas[0]!.spec.minReplicas ?? 1);
  });

  it('the readiness probe is an HTTP GET on the API port, with a timeout longer than the health checks', () => {
    const probe = apiContainer!.readinessProbe;
    expect(probe?.httpGet?.path).toBe('/health');
    expect(containerPort(apiContainer!, probe?.httpGet?.port)).toBe(loadConfig(environmentOf(apiContainer!)).API_PORT);
    // /health waits up to CHECK_TIMEOUT_MS for each dependency; a shorter probe timeout reads a slow answer as a failure.
    const source = readFileSync(path.join(PROJECT_ROOT, 'api', 'routes', 'health.ts'), 'utf8');
    const checkTimeoutMs = Number(/CHECK_TIMEOUT_MS\s*=\s*([\d_]+)/.exec(source)?.[1]?.replaceAll('_', ''));
    expect(checkTimeoutMs).toBeGreaterThan(0);
    expect((probe?.timeoutSeconds ?? 1) * 1000).toBeGreaterThan(checkTimeoutMs);
  });

  it('when Temporal and PostgreSQL answer, then the API answers its readiness probe path with 200, unauthenticated', async () => {
    const config: Config = loadConfig({ ...environmentOf(apiContainer!), LOG_LEVEL: 'silent' });
    const temporal = {
      connection: { withDeadline: <T>(_deadline: number, fn: () => Promise<T>): Promise<T> => fn() },
      workflowService: { describeNamespace: (): Promise<object> => Promise.resolve({}) },
    } as unknown as Client;
    const db = { query: (): Promise<object> => Promise.resolve({ rows: [] }) } as unknown as Db;
    const app = createApp({ temporal, db, config, log: createLogger('silent') });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}${apiContainer!.readinessProbe!.httpGet!.path!}`);
      expect(res.status).toBe(200);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('liveness does not depend on Temporal or PostgreSQL: a TCP check of the API port', () => {
    const probe = apiContainer!.livenessProbe;
    expect(probe?.httpGet).toBeUndefined();
    expect(probe?.tcpSocket).toBeDefined();
    expect(containerPort(apiContainer!, probe?.tcpSocket?.port)).toBe(
      loadConfig(environmentOf(apiContainer!)).API_PORT,
    );
    expect(
      apiContainer!.startupProbe?.httpGet,
      'a startup probe on /health would restart the API during an outage',
    ).toBe(undefined);
  });

  it('ingress is denied by default and allowed only to the API pods on the API port and to workers on metrics', () => {
    const policies = ofKind<NetworkPolicy>('NetworkPolicy');
    const denyAll = policies.filter(
      (p) =>
        Object.keys(p.spec.podSelector.matchLabels ?? {}).length === 0 &&
        (p.spec.podSelector.matchExpressions ?? []).length === 0 &&
        (p.spec.policyTypes ?? []).includes('Ingress') &&
        (p.spec.ingress ?? []).length === 0,
    );
    expect(denyAll, 'a policy selecting every pod with no ingress rule').toHaveLength(1);
    const allowing = policies.filter((p) => (p.spec.ingress ?? []).length > 0);
    expect(allowing.some((p) => selects(p.spec.podSelector.matchLabels, podLabels(apiDeployment!)))).toBe(true);
    for (const p of allowing) {
      expect(p.spec.podSelector.matchExpressions ?? [], 'selected by labels only').toEqual([]);
      const selected = workloads.filter((w) => selects(p.spec.podSelector.matchLabels, podLabels(w)));
      expect(selected.length, `${p.metadata.name} selects some pods`).toBeGreaterThan(0);
      for (const rule of p.spec.ingress ?? []) {
        // A rule without ports allows every port.
        expect(rule.ports?.length, p.metadata.name).toBeGreaterThan(0);
        for (const port of rule.ports ?? []) {
          for (const w of selected) {
            const main = containersOf(w).find((c) => runs(c, API_ENTRY) || runs(c, WORKER_ENTRY));
            const at = `${p.metadata.name} opens ${port.port} on ${w.metadata.name}`;
            expect(main, at).toBeDefined();
            const number = containerPort(main!, port.port);
            expect(number, `${at}: a port its container exposes`).toBeDefined();
            // The API pods: only the API port. Other pods: only their metrics port, and the inference pool's its
            // serving port (the API forwards predictions there).
            const env = loadConfig(environmentOf(main!));
            if (w === apiDeployment) expect(number, at).toBe(env.API_PORT);
            else if (env.WORKER_QUEUES.includes('inference'))
              expect([env.WORKER_METRICS_PORT, env.SERVING_PORT]).toContain(number);
            else expect(number, at).toBe(env.WORKER_METRICS_PORT);
          }
        }
      }
    }
  });

  it('every worker exposes its metrics port as `metrics`, listening on the pod address, reachable by Prometheus', () => {
    const policies = ofKind<NetworkPolicy>('NetworkPolicy').filter((p) => (p.spec.ingress ?? []).length > 0);
    for (const d of workerDeployments) {
      const c = containersOf(d).find((c) => runs(c, WORKER_ENTRY))!;
      const config = loadConfig(environmentOf(c));
      expect(config.WORKER_METRICS_PORT, d.metadata.name).toBeGreaterThan(0);
      expect(containerPort(c, 'metrics'), d.metadata.name).toBe(config.WORKER_METRICS_PORT);
      expect(['127.0.0.1', 'localhost', '::1'], 'a pod is scraped on its own address').not.toContain(
        config.WORKER_METRICS_HOST,
      );
      const open = policies.some(
        (p) =>
          selects(p.spec.podSelector.matchLabels, podLabels(d)) &&
          (p.spec.ingress ?? []).some((r) => (r.ports ?? []).some((port) => containerPort(c, port.port) !== undefined)),
      );
      expect(open, `a NetworkPolicy lets Prometheus reach ${d.metadata.name}`).toBe(true);
      expect(d.spec.template.metadata?.annotations?.['prometheus.io/port']).toBe(String(config.WORKER_METRICS_PORT));
    }
  });
});

describe('deploy/Dockerfile', () => {
  const allInstructions = stages.flatMap((s) => s.instructions.map((ins, i) => ({ stage: s, i, ins })));

  it('installs with npm ci, never npm install, with onnxruntime-node told not to download GPU binaries', () => {
    const installs = allInstructions.filter(
      ({ ins }) => ins.keyword === 'RUN' && /\bnpm\s+(ci|install|i)\b/.test(ins.rest),
    );
    expect(installs.length).toBeGreaterThan(0);
    for (const { stage, i, ins } of installs) {
      expect(ins.rest).toMatch(/\bnpm\s+ci\b/);
      expect(ins.rest).not.toMatch(/--ignore-scripts/);
      const earlier = [
        ...lineage(stage)
          .slice(1)
          .flatMap((s) => s.instructions),
        ...stage.instructions.slice(0, i),
      ];
      const skips = [...earlier.filter((e) => e.keyword === 'ENV'), ins].some((e) =>
        /\bONNXRUNTIME_NODE_INSTALL=skip\b/.test(e.rest),
      );
      expect(skips, 'ONNXRUNTIME_NODE_INSTALL=skip is set for npm ci (npm 10 runs install scripts)').toBe(true);
    }
  });

  it('builds from node:20-bookworm-slim', () => {
    expect(stages.length).toBeGreaterThan(1);
    for (const s of stages.filter((s) => !stageNamed(s.from))) expect(s.from).toBe('node:20-bookworm-slim');
  });

  it('runs as a numeric non-root USER in the final stage, so Kubernetes can verify runAsNonRoot', () => {
    const user = lineage(finalStage!)
      .flatMap((s) => s.instructions)
      .filter((i) => i.keyword === 'USER')
      .at(-1);
    const uid = user?.rest.split(':')[0] ?? '';
    expect(uid).toMatch(/^\d+$/);
    expect(Number(uid)).not.toBe(0);
  });

  it('builds the workflow bundle at the WORKFLOW_BUNDLE_PATH the ConfigMap gives, and the final image has it', () => {
    const bundlePath = (configMaps[0]?.data ?? {}).WORKFLOW_BUNDLE_PATH;
    expect(bundlePath).toEqual(expect.any(String));
    expect(dockerfileText).toMatch(BUNDLE_COMMAND);
    expect(stageHas(finalStage!, bundlePath as string)).toBe(true);
  });

  it('installs git in the final stage, for the execution pool', () => {
    const runsInFinal = lineage(finalStage!).flatMap((s) => s.instructions.filter((i) => i.keyword === 'RUN'));
    expect(runsInFinal.some((r) => /apt-get install\b.*\bgit\b/.test(r.rest))).toBe(true);
  });

  it('installs bubblewrap in the final stage and has the workspace MCP server the execution pool starts', () => {
    const runsInFinal = lineage(finalStage!).flatMap((s) => s.instructions.filter((i) => i.keyword === 'RUN'));
    expect(runsInFinal.some((r) => /apt-get install\b.*\bbubblewrap\b/.test(r.rest))).toBe(true);
    const workdir = workdirOf(finalStage!);
    expect(stageHas(finalStage!, path.posix.resolve(workdir, WORKSPACE_SERVER_ENTRY))).toBe(true);
  });

  it('runs the compiled API by default, and has the compiled file of every entry point the manifests run', () => {
    const argv = [...execForm(finalStage!, 'ENTRYPOINT'), ...execForm(finalStage!, 'CMD')];
    expect(argv.slice(-2)).toEqual(['node', API_ENTRY]);
    const workdir = workdirOf(finalStage!);
    expect(stageHas(finalStage!, path.posix.resolve(workdir, API_ENTRY)), API_ENTRY).toBe(true);
    for (const { container } of allContainers) {
      const argvOfContainer = argvOf(container);
      const entry = argvOfContainer[argvOfContainer.indexOf('node') + 1]!;
      expect(stageHas(finalStage!, path.posix.resolve(workdir, entry)), entry).toBe(true);
    }
  });

  it('the final image has no TypeScript sources, so every process and the workspace server run compiled', () => {
    const workdir = workdirOf(finalStage!);
    for (const source of [...runtimeEntries(), 'tsconfig.json']) {
      expect(stageHas(finalStage!, path.posix.resolve(workdir, source)), `${source} is in the image`).toBe(false);
    }
  });

  it('the final image has production dependencies only: node_modules from its own `npm ci --omit=dev` stage', () => {
    const npmInstall = (i: Instruction): boolean => i.keyword === 'RUN' && /\bnpm\s+(ci|install|i)\b/.test(i.rest);
    const omitsDev = (i: Instruction): boolean => /--omit[= ]dev\b/.test(i.rest);
    const installsDev = (stage: Stage): boolean =>
      lineage(stage).some((s) => s.instructions.some((i) => npmInstall(i) && !omitsDev(i)));
    expect(installsDev(finalStage!), 'an npm install with dev dependencies in the final stage').toBe(false);
    const workdir = workdirOf(finalStage!);
    const modulesDir = path.posix.join(workdir, 'node_modules');
    let productionModules = false;
    for (const ins of lineage(finalStage!).flatMap((s) => s.instructions)) {
      const copy = copyOf(ins);
      const source = copy?.from === undefined ? undefined : stageNamed(copy.from);
      if (!copy || !source) continue;
      for (const src of copy.sources) {
        const from = path.posix.resolve(workdirOf(source), src);
        const sourceModules = path.posix.join(workdirOf(source), 'node_modules');
        // node_modules itself, or a directory that holds it (COPY --from=build /app ./ did).
        if (from !== sourceModules && !sourceModules.startsWith(`${from}/`) && from !== '/') continue;
        expect(installsDev(source), `${ins.keyword} ${ins.rest}: node_modules with dev dependencies`).toBe(false);
        const installed = lineage(source).some((s) => s.instructions.some((i) => npmInstall(i) && omitsDev(i)));
        const dest = path.posix.resolve(workdir, copy.dest);
        if (installed && (dest === modulesDir || from !== sourceModules)) productionModules = true;
      }
    }
    expect(productionModules, 'node_modules copied from a stage that runs npm ci --omit=dev').toBe(true);
  });

  it('what the processes load at run time is in the image, and every package they import is a dependency', () => {
    const { dependencies = {} } = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    const { modules, packages } = runtimeGraph(runtimeEntries());
    expect(modules.size).toBeGreaterThan(10);
    const workdir = workdirOf(finalStage!);
    for (const module of modules) {
      const compiled = `dist/${module.replace(/\.ts$/, '.js')}`;
      expect(stageHas(finalStage!, path.posix.resolve(workdir, compiled)), `${compiled} (from ${module})`).toBe(true);
    }
    for (const [pkg, importer] of packages) {
      expect(Object.keys(dependencies), `${importer} imports ${pkg}: a devDependency is not in the image`).toContain(
        pkg,
      );
    }
  });
});

// ---- the program the image runs: its modules and packages, from the entry points ------------------------------

/** The sources of every entry point: the manifests', the image's default command and the workspace server. */
function runtimeEntries(): string[] {
  const entries = [
    ...allContainers.map(({ container }) => argvOf(container)),
    finalStage ? [...execForm(finalStage, 'ENTRYPOINT'), ...execForm(finalStage, 'CMD')] : [],
  ].map((argv) => argv[argv.indexOf('node') + 1] ?? '');
  const sources = [...entries, WORKSPACE_SERVER_ENTRY].map(sourceOfEntry);
  expect(sources.every((s) => s !== undefined)).toBe(true);
  return [...new Set(sources as string[])];
}

/**
 * Modules a file loads when it runs: imports and re-exports (not `import type`), import(), require(), and worker
 * files (`new URL('./x.mjs', import.meta.url)`).
 */
function loadedSpecifiers(file: string): string[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: string[] = [];
  const firstString = (args: readonly ts.Expression[] | undefined): string | undefined =>
    args?.[0] && ts.isStringLiteralLike(args[0]) ? args[0].text : undefined;
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly && ts.isStringLiteral(node.moduleSpecifier)) {
      out.push(node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && !node.isTypeOnly && node.moduleSpecifier) {
      if (ts.isStringLiteral(node.moduleSpecifier)) out.push(node.moduleSpecifier.text);
    } else if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(node.expression) && node.expression.text === 'require'))
    ) {
      const spec = firstString(node.arguments);
      if (spec !== undefined) out.push(spec);
    } else if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'URL') {
      const spec = firstString(node.arguments);
      if (spec?.startsWith('./') && node.arguments?.[1]?.getText(sf) === 'import.meta.url') out.push(spec);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** Every repository module reachable from the entries (relative paths), and each package they import (by whom). */
function runtimeGraph(entries: string[]): { modules: Set<string>; packages: Map<string, string> } {
  const builtins = new Set(builtinModules);
  const modules = new Set<string>();
  const packages = new Map<string, string>();
  const queue = [...entries];
  while (queue.length > 0) {
    const module = queue.shift()!;
    if (modules.has(module)) continue;
    modules.add(module);
    for (const spec of loadedSpecifiers(path.join(PROJECT_ROOT, module))) {
      if (spec.startsWith('.')) {
        const target = path.posix.join(path.posix.dirname(module), spec);
        const asSource = target.replace(/\.js$/, '.ts');
        queue.push(existsSync(path.join(PROJECT_ROOT, asSource)) ? asSource : target);
      } else if (!spec.startsWith('node:') && !builtins.has(spec)) {
        const name = spec
          .split('/')
          .slice(0, spec.startsWith('@') ? 2 : 1)
          .join('/');
        if (!packages.has(name)) packages.set(name, module);
      }
    }
  }
  return { modules, packages };
}
