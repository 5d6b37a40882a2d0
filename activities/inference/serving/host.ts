/**
 * The serving host: one per inference-pool process. It keeps an ONNX Runtime session (in a worker thread of its own,
 * activities/inference/ort.ts) for every version a model's serving row names — baseline, canary, and versions kept
 * warm — and routes each request among them (routing.ts) through a dynamic batcher per version (batcher.ts).
 *
 * Lifecycle of a version in this process:
 *   row names it → load (artifact from the blob store) → warm (one run on zeros) → it may now receive traffic;
 *   row drops it → no new requests → in-flight requests drain → session released, thread ended.
 * Until a named version is warm, the routing table uses only the loaded ones (a canary not yet warm gets no
 * traffic; a new baseline not yet warm leaves the old one answering). Weight-only changes apply at once, even while
 * another version loads: a rollback is never held up by a swap. The generation is reported to
 * model_serving_replicas only once every named version is warm, so the rollout knows when traffic may move.
 *
 * Changes arrive by LISTEN model_serving (a dedicated connection, re-established if it drops) and, as a backstop,
 * by re-reading every row each `reloadMs`. Every prediction gets an id and is recorded (in batches) in
 * model_predictions with its version and arm; a canary failure is answered by the baseline (route `fallback`), so
 * a bad canary costs the caller latency, not an error. Shadow copies run after the answer and are never returned.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Db } from '../../../common/db.js';
import {
  getServing,
  insertPredictions,
  listServing,
  reportReplica,
  versionsOf,
  type PredictionRecord,
  type Route,
  type ServingRow,
} from '../../../common/model-serving.js';
import type { ModelSignature } from '../../../common/onnx/signature.js';
import type { SessionSettings } from '../../../common/onnx/session-settings.js';
import { floatTensor, OrtThread } from '../ort.js';
import { DEFAULT_BATCH, DynamicBatcher, type BatchSettings, type RunBatch } from './batcher.js';
import { modelCanaryWeight, modelLatencySeconds, modelRequestsTotal, modelShadowTotal } from './metrics.js';
import { chooseArm, ShadowPicker, SmoothWrr, type Arm, type RouteTable } from './routing.js';

export interface VersionArtifact {
  bytes: Uint8Array;
  session?: SessionSettings;
  serving?: Partial<BatchSettings>;
}

/** Where a version's ONNX bytes and settings come from (the registry and blob store; tests may pass their own). */
export type ArtifactSource = (tenantId: string, model: string, version: string) => Promise<VersionArtifact>;

export interface PredictOptions {
  /** Sticky routing key. */
  key?: string;
  /** Header routing: a version or an arm. */
  pin?: string;
}

export interface Prediction {
  id: string;
  model: string;
  version: string;
  arm: Arm;
  route: Route;
  outputs: number[][];
  /** argmax of each output row. */
  predicted: number[];
}

export class ModelNotServed extends Error {
  override name = 'ModelNotServed';
}

export class BadInput extends Error {
  override name = 'BadInput';
}

interface LoadedVersion {
  version: string;
  thread: OrtThread;
  key: string;
  inputName: string;
  outputName: string;
  width: number;
  batcher: DynamicBatcher;
}

interface ModelState {
  desired: ServingRow;
  versions: Map<string, LoadedVersion>;
  loading: Set<string>;
  /** The table requests are routed by (only warm versions). */
  table?: { route: RouteTable; baseline: LoadedVersion; canary?: LoadedVersion; shadow?: LoadedVersion; share: number };
  wrr: SmoothWrr<Arm>;
  shadowPicker: ShadowPicker;
  reported: number;
}

export interface ServingHostOptions {
  db: Db;
  databaseUrl: string;
  artifacts: ArtifactSource;
  replicaId?: string;
  /** Backstop re-read of every serving row. */
  reloadMs?: number;
  /** How often recorded predictions are written. */
  flushMs?: number;
  log?: { warn: (obj: object, msg: string) => void };
}

const argmax = (row: ArrayLike<number>): number => {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
};

/**
 * The serving path's batch assembly for a loaded session: request rows → one [batch, width] float32 feed → one
 * output row per request row. The tuning trial measures candidates through it (activities/inference/tuning).
 */
export function batchRunner(
  thread: OrtThread,
  key: string,
  signature: ModelSignature,
): { run: RunBatch; width: number; inputName: string; outputName: string } {
  const input = signature.inputs[0];
  const output = signature.outputs[0];
  const width = input?.shape[1];
  if (!input || !output || typeof width !== 'number') {
    throw new Error('expected one float32 input [batch, n] with a fixed n');
  }
  const run: RunBatch = async (rows) => {
    const data = new Float32Array(rows.length * width);
    rows.forEach((r, i) => data.set(r, i * width));
    const { outputs } = await thread.run({ key, feeds: { [input.name]: floatTensor(data, [rows.length, width]) } });
    const out = outputs[output.name]!;
    const n = out.dims[1] ?? 1;
    return rows.map((_, i) => Float32Array.from(out.data.subarray(i * n, (i + 1) * n) as Float32Array));
  };
  return { run, width, inputName: input.name, outputName: output.name };
}

export class ServingHost {
  readonly replicaId: string;
  private readonly models = new Map<string, ModelState>();
  private readonly refreshing = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  private listener: pg.Client | undefined;
  private timers: NodeJS.Timeout[] = [];
  private buffer: PredictionRecord[] = [];
  private readonly loads = new Set<Promise<void>>();
  private closed = false;
  private seq = 0;

  constructor(private readonly opts: ServingHostOptions) {
    this.replicaId = opts.replicaId ?? `serving-${process.pid}-${randomUUID().slice(0, 8)}`;
  }

  /** Listens for changes, loads every served model, and starts the backstop re-read and the prediction writer. */
  async start(): Promise<void> {
    await this.listen();
    await this.refreshAll();
    await this.idle();
    this.timers.push(
      setInterval(
        () =>
          void this.refreshAll()
            .then(() => this.heartbeat())
            .catch(() => undefined),
        this.opts.reloadMs ?? 5000,
      ),
    );
    this.timers.push(setInterval(() => void this.flush(), this.opts.flushMs ?? 100));
    for (const t of this.timers) t.unref();
  }

  private async listen(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.opts.databaseUrl });
    client.on('notification', (msg) => {
      try {
        const { tenant_id, model } = JSON.parse(msg.payload ?? '{}') as { tenant_id: string; model: string };
        void this.refresh(tenant_id, model).catch(() => undefined);
      } catch {
        // a malformed payload: the backstop re-read covers it
      }
    });
    // A dropped connection: reconnect after a pause; meanwhile the periodic re-read keeps weights current.
    client.on('error', () => undefined);
    client.on('end', () => {
      if (this.listener === client && !this.closed) setTimeout(() => void this.listen().catch(() => undefined), 1000);
    });
    await client.connect();
    await client.query('LISTEN model_serving');
    this.listener = client;
  }

  /** Resolves when no version is loading (start() waits for it: a process takes traffic with its models warm). */
  async idle(): Promise<void> {
    while (this.loads.size > 0) await Promise.all([...this.loads]);
  }

  async refreshAll(): Promise<void> {
    const rows = await listServing(this.opts.db);
    await Promise.all(rows.map((row) => this.refresh(row.tenantId, row.model, row)));
  }

  /** Re-reads one model's row and applies it; concurrent calls coalesce (one runs, one more follows). */
  refresh(tenantId: string, model: string, row?: ServingRow): Promise<void> {
    const id = `${tenantId}/${model}`;
    const running = this.refreshing.get(id);
    if (running) {
      this.dirty.add(id);
      return running;
    }
    // Deferred a tick, so the entry is in `refreshing` before the body can finish (and delete it).
    const run = Promise.resolve().then(async () => {
      try {
        let next: ServingRow | undefined = row ?? (await getServing(this.opts.db, tenantId, model));
        for (;;) {
          if (next) this.apply(next);
          if (!this.dirty.delete(id)) break;
          next = await getServing(this.opts.db, tenantId, model);
        }
      } finally {
        this.refreshing.delete(id);
      }
    });
    this.refreshing.set(id, run);
    return run;
  }

  /** Applies a row: routing at once with what is warm; loads what is missing; drains and releases what is gone. */
  private apply(row: ServingRow): void {
    const id = `${row.tenantId}/${row.model}`;
    let state = this.models.get(id);
    if (state && row.generation < state.desired.generation) return; // an older read than one already applied
    if (!state) {
      state = {
        desired: row,
        versions: new Map(),
        loading: new Set(),
        wrr: new SmoothWrr<Arm>({ baseline: 1, canary: 0 }),
        shadowPicker: new ShadowPicker(),
        reported: 0,
      };
      this.models.set(id, state);
    }
    state.desired = row;
    this.rebuildTable(state);
    const wanted = versionsOf(row);
    for (const version of wanted) {
      if (!state.versions.has(version) && !state.loading.has(version)) {
        const loading = this.load(state, version).finally(() => this.loads.delete(loading));
        this.loads.add(loading);
      }
    }
    for (const [version, lv] of state.versions) {
      const inUse = state.table && [state.table.baseline, state.table.canary, state.table.shadow].includes(lv);
      if (!wanted.includes(version) && !inUse) void this.unload(state, lv);
    }
    void this.report(state);
  }

  private rebuildTable(state: ModelState): void {
    const row = state.desired;
    const baseline = state.versions.get(row.baselineVersion) ?? state.table?.baseline;
    if (!baseline) return; // nothing warm yet: requests wait for the first load (ModelNotServed meanwhile)
    const canary = row.canaryVersion ? state.versions.get(row.canaryVersion) : undefined;
    const weighted = canary && row.canaryWeight > 0 ? canary : undefined;
    state.table = {
      baseline,
      canary: canary && canary !== baseline ? canary : undefined,
      shadow: canary && row.shadowShare > 0 && canary !== baseline ? canary : undefined,
      share: row.shadowShare,
      route: {
        baseline: { version: baseline.version },
        ...(canary && canary !== baseline
          ? { canary: { version: canary.version, weight: weighted ? row.canaryWeight : 0 } }
          : {}),
      },
    };
    modelCanaryWeight.set({ model: row.model }, state.table.route.canary?.weight ?? 0);
  }

  private async load(state: ModelState, version: string): Promise<void> {
    const { tenantId, model } = state.desired;
    state.loading.add(version);
    const thread = new OrtThread();
    try {
      const artifact = await this.opts.artifacts(tenantId, model, version);
      const key = `${tenantId}/${model}/${version}/${this.seq++}`;
      const { signature } = await thread.load({ key, bytes: artifact.bytes, settings: artifact.session });
      const lv = this.versionOf(version, thread, key, signature, { ...DEFAULT_BATCH, ...artifact.serving });
      // Warm before traffic: the first run allocates ONNX Runtime's buffers; no request pays for it. A version whose
      // run fails is still served as asked (its errors are the canary analysis's evidence, and fall back).
      await thread
        .run({ key, feeds: { [lv.inputName]: floatTensor(new Float32Array(lv.width), [1, lv.width]) } })
        .catch((err: unknown) => this.opts.log?.warn({ err, version }, 'serving: the warm-up run failed'));
      state.versions.set(version, lv);
    } catch (err) {
      await thread.close();
      this.opts.log?.warn({ err, tenantId, model, version }, 'serving: a version did not load; retried on re-read');
      return;
    } finally {
      state.loading.delete(version);
    }
    if (this.closed) return;
    this.apply(state.desired);
  }

  private versionOf(
    version: string,
    thread: OrtThread,
    key: string,
    signature: ModelSignature,
    batch: BatchSettings,
  ): LoadedVersion {
    const runner = batchRunner(thread, key, signature);
    return { version, thread, key, ...runner, batcher: new DynamicBatcher(runner.run, batch) };
  }

  private async unload(state: ModelState, lv: LoadedVersion): Promise<void> {
    if (state.versions.get(lv.version) !== lv) return;
    state.versions.delete(lv.version);
    // Drain before close: requests already handed to this version finish on it.
    await lv.batcher.drained();
    await lv.thread.close();
  }

  private async report(state: ModelState): Promise<void> {
    const row = state.desired;
    const ready = versionsOf(row).every((v) => state.versions.has(v));
    if (!ready || state.reported >= row.generation) return;
    state.reported = row.generation;
    await reportReplica(this.opts.db, this.replicaId, row, row.generation, [...state.versions.keys()]).catch(
      () => (state.reported = 0),
    );
  }

  /** Heartbeat: every model's applied generation again (a replica silent for a while stops counting). */
  async heartbeat(): Promise<void> {
    for (const state of this.models.values()) {
      state.reported = 0;
      await this.report(state);
    }
  }

  /** Routes and answers one request (1..n rows). */
  async predict(tenantId: string, model: string, inputs: number[][], opts: PredictOptions = {}): Promise<Prediction> {
    let state = this.models.get(`${tenantId}/${model}`);
    if (!state?.table) {
      // A model this process has not loaded yet (just registered, or named since the last notification).
      await this.refresh(tenantId, model);
      await this.idle();
      state = this.models.get(`${tenantId}/${model}`);
    }
    const table = state?.table;
    if (!state || !table) throw new ModelNotServed(`model ${model} is not served (yet) by this process`);
    const rows = this.rowsOf(inputs, table.baseline.width);
    const route: Route =
      opts.pin !== undefined && this.pinned(table.route, opts.pin)
        ? 'pin'
        : opts.key !== undefined
          ? 'sticky'
          : 'weights';
    const arm = chooseArm(table.route, opts, state.wrr);
    const first = arm === 'canary' && table.canary ? table.canary : table.baseline;
    try {
      const answer = await this.run(tenantId, model, first, arm, route, rows);
      if (arm === 'baseline' && table.shadow && state.shadowPicker.next(table.share)) {
        void this.mirror(tenantId, model, table.shadow, rows, answer.predicted[0] ?? null);
      }
      return answer;
    } catch (err) {
      if (arm !== 'canary' || route === 'pin') throw err;
      // The canary failed: the baseline answers (the failure is recorded against the canary).
      return this.run(tenantId, model, table.baseline, 'baseline', 'fallback', rows);
    }
  }

  private pinned(table: RouteTable, pin: string): boolean {
    return [table.baseline.version, 'baseline', ...(table.canary ? [table.canary.version, 'canary'] : [])].includes(
      pin,
    );
  }

  private rowsOf(inputs: number[][], width: number): Float32Array[] {
    if (inputs.length === 0) throw new BadInput('expected at least one input row');
    return inputs.map((r, i) => {
      if (r.length !== width) throw new BadInput(`input row ${i} has ${r.length} values; the model takes ${width}`);
      return Float32Array.from(r);
    });
  }

  private async run(
    tenantId: string,
    model: string,
    lv: LoadedVersion,
    arm: Arm,
    route: Route,
    rows: Float32Array[],
  ): Promise<Prediction> {
    const id = randomUUID();
    const at = new Date();
    const started = performance.now();
    const record = (ok: boolean, predicted: number | null) => {
      const latencyMs = performance.now() - started;
      modelRequestsTotal.inc({ model, version: lv.version, arm, route, outcome: ok ? 'ok' : 'error' });
      if (ok) modelLatencySeconds.observe({ model, version: lv.version }, latencyMs / 1000);
      this.buffer.push({
        id,
        tenantId,
        model,
        version: lv.version,
        arm,
        route,
        replicaId: this.replicaId,
        ok,
        latencyMs,
        predicted,
        primaryPredicted: null,
        at,
      });
    };
    let out: Float32Array[];
    try {
      out = await lv.batcher.submit(rows);
    } catch (err) {
      record(false, null);
      throw err;
    }
    const predicted = out.map(argmax);
    record(true, rows.length === 1 ? predicted[0]! : null);
    return { id, model, version: lv.version, arm, route, outputs: out.map((o) => Array.from(o)), predicted };
  }

  /** Shadow traffic: run on the canary after answering; compare; record; never return it. */
  private async mirror(
    tenantId: string,
    model: string,
    lv: LoadedVersion,
    rows: Float32Array[],
    primary: number | null,
  ) {
    const started = performance.now();
    let ok = true;
    let predicted: number | null = null;
    try {
      const out = await lv.batcher.submit(rows);
      predicted = argmax(out[0]!);
    } catch {
      ok = false;
    }
    modelShadowTotal.inc({ model, version: lv.version, agrees: String(ok && predicted === primary) });
    this.buffer.push({
      id: randomUUID(),
      tenantId,
      model,
      version: lv.version,
      arm: 'canary',
      route: 'shadow',
      replicaId: this.replicaId,
      ok,
      latencyMs: performance.now() - started,
      predicted,
      primaryPredicted: primary,
      at: new Date(),
    });
  }

  /** Writes the recorded predictions (also called by feedback before it looks one up). */
  async flush(): Promise<void> {
    const batch = this.buffer.splice(0);
    if (batch.length === 0) return;
    try {
      await insertPredictions(this.opts.db, batch);
    } catch (err) {
      // Keep them for the next flush (bounded: a long database outage drops the oldest records, never requests).
      this.buffer.unshift(...batch.slice(-50_000));
      this.opts.log?.warn({ err, records: batch.length }, 'serving: predictions not recorded yet');
    }
  }

  /** What this process applies for a model (status and tests). */
  snapshot(tenantId: string, model: string) {
    const state = this.models.get(`${tenantId}/${model}`);
    if (!state) return undefined;
    return {
      generation: state.desired.generation,
      reported: state.reported,
      loaded: [...state.versions.keys()],
      baseline: state.table?.baseline.version,
      canary: state.table?.route.canary,
      shadow: state.table?.shadow?.version,
      inFlight: Object.fromEntries([...state.versions].map(([v, lv]) => [v, lv.batcher.pending])),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
    for (const state of this.models.values()) {
      for (const lv of [...state.versions.values()]) await this.unload(state, lv);
    }
    await this.flush();
  }
}
