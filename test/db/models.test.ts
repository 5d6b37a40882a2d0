/**
 * The model registry (common/models.ts) on the run's database: registering versions (explicit and automatic semver,
 * idempotent by content, refusing another artifact under a taken version or a blob that is not the tenant's), the
 * status state machine with evidence (every illegal move refused, promotion retiring the previous active version,
 * concurrent movers: one wins), validation records, settings, listing in semver order, and tenant isolation.
 * Each test works in a tenant of its own.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ensureTenant } from '../../common/api-keys.js';
import { listAuditEvents } from '../../common/audit.js';
import { createPostgresBlobStore, type PostgresBlobStore } from '../../common/blob-store/postgres.js';
import { BlobNotFoundError, type BlobRef } from '../../common/blob-store/types.js';
import type { Db } from '../../common/db.js';
import {
  ModelTransitionError,
  ModelVersionExistsError,
  TRANSITIONS,
  VERSION_STATUSES,
  activeVersion,
  getModelVersion,
  listModelVersions,
  listModels,
  recordValidation,
  registerModelVersion,
  setVersionStatus,
  updateVersionSettings,
  versionTransitions,
  type Provenance,
  type VersionStatus,
} from '../../common/models.js';
import { buildMlpOnnx, randomMlp } from '../../common/onnx/builder.js';
import { useDb } from '../helpers/stack.js';

const run = randomUUID().slice(0, 8);
const PERSON: Provenance = { by: { kind: 'person', principal: 'user:alice' }, data: { dataset: 'synthetic' } };

describe('model registry', () => {
  let db: Db;
  let store: PostgresBlobStore;
  let n = 0;

  useDb((pool) => {
    db = pool;
    store = createPostgresBlobStore(db);
  });

  async function freshTenant(): Promise<string> {
    const tenant = `models-${run}-${++n}`;
    await ensureTenant(db, tenant, 'model registry');
    return tenant;
  }
  const artifact = (tenant: string, seed: number): Promise<BlobRef> =>
    store.put(tenant, buildMlpOnnx(randomMlp([4, 3], seed)));
  const register = async (tenant: string, seed: number, version?: string) =>
    registerModelVersion(db, {
      tenantId: tenant,
      name: 'digits',
      ...(version ? { version } : {}),
      artifact: await artifact(tenant, seed),
      provenance: PERSON,
      createdBy: 'user:alice',
    });

  it('when versions are registered, then they number themselves, list newest semver first and refuse a taken version', async () => {
    const tenant = await freshTenant();
    const first = await register(tenant, 1);
    expect(first).toMatchObject({ version: '1.0.0', status: 'registered', signature: null, metrics: {}, settings: {} });
    expect((await register(tenant, 2)).version).toBe('1.0.1');
    await register(tenant, 3, '1.10.0');
    await register(tenant, 4, '1.2.0');
    await register(tenant, 5, '2.0.0-rc.1');
    await register(tenant, 6, '2.0.0');
    expect((await register(tenant, 7)).version).toBe('2.0.1');
    const versions = (await listModelVersions(db, tenant, 'digits')).map((v) => v.version);
    expect(versions).toEqual(['2.0.1', '2.0.0', '2.0.0-rc.1', '1.10.0', '1.2.0', '1.0.1', '1.0.0']);
    await expect(register(tenant, 99, '1.2.0')).rejects.toBeInstanceOf(ModelVersionExistsError);
    expect(await listModels(db, tenant)).toEqual([
      expect.objectContaining({ name: 'digits', versions: 7, latest: '2.0.1', active: null }),
    ]);
  });

  it('when the same registration is retried, then it returns the first one; a bad name, version or blob is refused', async () => {
    const tenant = await freshTenant();
    const ref = await artifact(tenant, 1);
    const input = { tenantId: tenant, name: 'digits', artifact: ref, provenance: PERSON, createdBy: 'user:alice' };
    const a = await registerModelVersion(db, input);
    const b = await registerModelVersion(db, input);
    expect(b).toEqual(a);
    expect(await registerModelVersion(db, { ...input, version: '1.0.0' })).toEqual(a);
    await expect(registerModelVersion(db, { ...input, name: 'Bad Name' })).rejects.toThrow(/model name/);
    await expect(registerModelVersion(db, { ...input, version: '1.0' })).rejects.toThrow(/semantic version/);
    const missing = { ...ref, sha256: 'f'.repeat(64) };
    await expect(registerModelVersion(db, { ...input, version: '3.0.0', artifact: missing })).rejects.toBeInstanceOf(
      BlobNotFoundError,
    );
    const other = await freshTenant();
    const foreign = await artifact(other, 2);
    await expect(registerModelVersion(db, { ...input, artifact: foreign })).rejects.toThrow(/another tenant/);
    // The blob of the version is kept by a reference, so retention leaves it alone.
    const refs = await db.query('SELECT owner_id FROM blob_refs WHERE tenant_id = $1 AND owner_kind = $2', [
      tenant,
      'model',
    ]);
    expect(refs.rows).toEqual([{ owner_id: 'digits@1.0.0' }]);
  });

  it('when a version walks the state machine, then every illegal move is refused and each move leaves evidence', async () => {
    const tenant = await freshTenant();
    // For every (from, to) pair: put a version in `from` directly, try the move, compare with the table.
    for (const from of VERSION_STATUSES) {
      for (const to of VERSION_STATUSES) {
        if (from === to) continue;
        const v = await register(tenant, 1000 + VERSION_STATUSES.indexOf(from) * 10 + VERSION_STATUSES.indexOf(to));
        if (from === 'active')
          await db.query(`UPDATE model_versions SET status = 'retired' WHERE tenant_id = $1 AND status = 'active'`, [
            tenant,
          ]);
        await db.query(
          'UPDATE model_versions SET status = $4 WHERE tenant_id = $1 AND model_name = $2 AND version = $3',
          [tenant, v.name, v.version, from],
        );
        const move = setVersionStatus(db, tenant, v.name, v.version, { to, actor: 'test', evidence: { from } });
        if (TRANSITIONS[to].includes(from))
          await expect(move, `${from} → ${to}`).resolves.toMatchObject({ status: to });
        else await expect(move, `${from} → ${to}`).rejects.toBeInstanceOf(ModelTransitionError);
      }
    }
  });

  it('when a canary is promoted, then the previous active version is retired in the same step, with evidence', async () => {
    const tenant = await freshTenant();
    const v1 = await register(tenant, 1);
    const v2 = await register(tenant, 2);
    const move = (version: string, to: VersionStatus, evidence = {}) =>
      setVersionStatus(db, tenant, 'digits', version, { to, actor: 'workflow:canary-digits', evidence });
    await move(v1.version, 'validated');
    await move(v1.version, 'active', { strategy: 'first' });
    await move(v2.version, 'validated');
    await move(v2.version, 'canary', { step: 1 });
    expect((await activeVersion(db, tenant, 'digits'))?.version).toBe('1.0.0');
    await move(v2.version, 'active', { decision: 'promote' });
    expect((await activeVersion(db, tenant, 'digits'))?.version).toBe('1.0.1');
    expect((await getModelVersion(db, tenant, 'digits', '1.0.0'))?.status).toBe('retired');
    const history = await versionTransitions(db, tenant, 'digits', '1.0.0');
    expect(history.map((t) => [t.from, t.to])).toEqual([
      [null, 'registered'],
      ['registered', 'validated'],
      ['validated', 'active'],
      ['active', 'retired'],
    ]);
    expect(history[3]).toMatchObject({
      actor: 'workflow:canary-digits',
      evidence: { replacedBy: '1.0.1', decision: 'promote' },
    });
    // A retried move is a no-op, not an error and not a second transition.
    await move(v2.version, 'active', { decision: 'promote' });
    expect(await versionTransitions(db, tenant, 'digits', v2.version)).toHaveLength(4);
    const audit = (await listAuditEvents(db, { tenantId: tenant })).map((e) => `${e.action} ${e.subject}`);
    expect(audit).toEqual(
      expect.arrayContaining(['model.version.retired digits@1.0.0', 'model.version.active digits@1.0.1']),
    );
  });

  it('when two rollouts race to move one canary, then exactly one wins', async () => {
    const tenant = await freshTenant();
    const v = await register(tenant, 1);
    await setVersionStatus(db, tenant, 'digits', v.version, { to: 'validated', actor: 't', evidence: {} });
    await setVersionStatus(db, tenant, 'digits', v.version, { to: 'canary', actor: 't', evidence: {} });
    const results = await Promise.allSettled([
      setVersionStatus(db, tenant, 'digits', v.version, { to: 'active', actor: 'promote', evidence: {} }),
      setVersionStatus(db, tenant, 'digits', v.version, { to: 'rolled_back', actor: 'rollback', evidence: {} }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refused?.reason).toBeInstanceOf(ModelTransitionError);
  });

  it('when validation is recorded, then the signature and report are stored, and a failed one rejects the version', async () => {
    const tenant = await freshTenant();
    const good = await register(tenant, 1);
    const bad = await register(tenant, 2);
    const signature = {
      inputs: [{ name: 'input', type: 'float32', shape: ['batch', 4] }],
      outputs: [{ name: 'output', type: 'float32', shape: ['batch', 3] }],
    };
    const ok = await recordValidation(db, tenant, 'digits', good.version, {
      report: { passed: true, reasons: [], p95Ms: 0.2 },
      signature,
      actor: 'worker:inference',
    });
    expect(ok).toMatchObject({ status: 'validated', signature, validation: { passed: true, p95Ms: 0.2 } });
    const no = await recordValidation(db, tenant, 'digits', bad.version, {
      report: { passed: false, reasons: ["input 'input' dim 1 is [batch, 5], the active version [batch, 4]"] },
      actor: 'worker:inference',
    });
    expect(no.status).toBe('rejected');
    expect((await versionTransitions(db, tenant, 'digits', bad.version))[1]?.evidence).toMatchObject({
      passed: false,
      reasons: [expect.stringContaining('dim 1')],
    });
    const tuned = await updateVersionSettings(db, tenant, 'digits', good.version, {
      session: { intraOpNumThreads: 1, configEntries: { 'session.intra_op.allow_spinning': '0' } },
      serving: { maxBatchSize: 16, maxWaitMs: 2, concurrency: 2 },
    });
    expect(tuned.settings.serving).toEqual({ maxBatchSize: 16, maxWaitMs: 2, concurrency: 2 });
    await expect(
      updateVersionSettings(db, tenant, 'digits', good.version, {
        serving: { maxBatchSize: 0, maxWaitMs: 1, concurrency: 1 },
      }),
    ).rejects.toThrow();
  });

  it('when another tenant asks, then it sees none of the models', async () => {
    const tenant = await freshTenant();
    const v = await register(tenant, 1);
    const other = await freshTenant();
    expect(await getModelVersion(db, other, 'digits', v.version)).toBeUndefined();
    expect(await listModelVersions(db, other, 'digits')).toEqual([]);
    expect(await listModels(db, other)).toEqual([]);
    await expect(
      setVersionStatus(db, other, 'digits', v.version, { to: 'validated', actor: 't', evidence: {} }),
    ).rejects.toThrow(/no version/);
  });
});
