/**
 * Approvals that cannot be forged (workflows/task/decision-proof.ts), on the real stack with payload encryption on:
 * whoever reaches the Temporal frontend can send `approve`, but only a decision the API signed for this task and this
 * hash, with a new nonce, in an encrypted payload, moves the task. Every other attempt is recorded as refused and the
 * task keeps waiting; then a decision through the API proceeds.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signDecision } from '../../common/approval-keys.js';
import { listAuditEvents } from '../../common/audit.js';
import type { Config } from '../../common/config.js';
import type { agentTaskWorkflow } from '../../workflows/index.js';
import type { SignedDecision } from '../../workflows/task/decision-proof.js';
import {
  approveSignal,
  decideUpdate,
  progressQuery,
  rejectSignal,
  taskWorkflowId,
} from '../../workflows/task/definitions.js';
import {
  eventually,
  json,
  sampleRepo,
  temporalClient,
  useStack,
  type RunningApi,
  type RunningWorkers,
} from '../helpers/stack.js';
import { calculatorSpec, taskClient } from '../helpers/tasks.js';

describe('signed approvals, with payload encryption on', () => {
  let config: Config;
  let workers: RunningWorkers;
  let api: RunningApi;
  /** A client holding the payload keys (as the platform's own): its payloads are encrypted. */
  let keyed: Client;
  /** A client without them (the CLI or the Web UI without the codec): its payloads are plaintext. */
  let plain: Client;
  const client = taskClient(() => api);

  useStack((stack) => ({ config, workers, api } = stack), {
    env: {
      TASK_APPROVAL_TIMEOUT: '120s',
      PAYLOAD_KEYS: `k1:${randomBytes(32).toString('base64')}`,
      PAYLOAD_KEY_ID: 'k1',
    },
  });
  beforeAll(async () => {
    keyed = await temporalClient(config);
    plain = new Client({
      connection: await Connection.connect({ address: config.TEMPORAL_ADDRESS }),
      namespace: config.TEMPORAL_NAMESPACE,
    });
  });
  afterAll(async () => {
    await plain?.connection.close();
    await keyed?.connection.close();
  });

  async function strictTask(title: string): Promise<{ id: string; hash: string }> {
    const id = await client.submit({ title, workspace: await sampleRepo(), mode: 'strict', spec: calculatorSpec() });
    const waiting = await client.waitFor(id, 'awaiting_approval', 90_000);
    return { id, hash: waiting.progress!.pendingApproval!.hash };
  }

  async function token(id: string, body: Record<string, unknown>): Promise<SignedDecision> {
    const res = await client.post(`/api/v1/tasks/${id}/approval-token`, body);
    const answer = await json<{ input: SignedDecision; signal: string; cli: string; workflowId: string }>(res);
    expect(res.status, JSON.stringify(answer)).toBe(200);
    expect(answer.workflowId).toBe(taskWorkflowId(id));
    expect(answer.cli).toContain(`--name ${answer.signal}`);
    return answer.input;
  }

  const refusedNotes = async (id: string): Promise<string[]> =>
    (await listAuditEvents(workers.db, { tenantId: 'default', workflowId: taskWorkflowId(id) }))
      .filter((e) => e.action === 'approval.refused')
      .map((e) => String((e.payload as { note?: unknown }).note));

  /** Waits for the n-th refusal to be recorded, and checks that the task still waits on the same hash. */
  async function refusedAs(id: string, hash: string, n: number, note: RegExp): Promise<void> {
    const notes = await eventually(
      async () => {
        const all = await refusedNotes(id);
        return all.length >= n ? all : undefined;
      },
      { what: `refusal ${n} of task ${id}` },
    ).catch(async (err: unknown) => {
      const h = await keyed.workflow.getHandle(taskWorkflowId(id)).fetchHistory();
      console.log(
        JSON.stringify(
          (h.events ?? []).slice(-12).map((e) => ({
            t: e.eventType,
            f: e.workflowTaskFailedEventAttributes?.failure?.message,
            s: e.workflowExecutionSignaledEventAttributes?.signalName,
            a: e.activityTaskScheduledEventAttributes?.activityType?.name,
            af: e.activityTaskFailedEventAttributes?.failure?.message,
          })),
        ),
      );
      throw err;
    });
    expect(notes[n - 1]).toMatch(note);
    const progress = await keyed.workflow.getHandle<typeof agentTaskWorkflow>(taskWorkflowId(id)).query(progressQuery);
    expect(progress.status).toBe('awaiting_approval');
    expect(progress.pendingApproval?.hash).toBe(hash);
  }

  it('when approvals are forged, replayed, signed for another task or hash, or sent in plaintext, then each is refused and recorded, the task still waits, and the API approval proceeds', async () => {
    const a = await strictTask('Forgery target');
    const b = await strictTask('Another task');
    const handle = keyed.workflow.getHandle<typeof agentTaskWorkflow>(taskWorkflowId(a.id));
    let n = 0;

    // 1. A forged approver, unsigned: the issue's `temporal workflow signal --name approve` (here encrypted).
    await handle.signal(approveSignal, { approver: 'user:ceo-of-everything', hash: a.hash });
    await refusedAs(a.id, a.hash, ++n, /^refused: unsigned/);

    // 2. A real token whose approver was changed: the signature no longer covers it.
    const real = await token(a.id, { decision: 'approve', hash: a.hash });
    await handle.signal(approveSignal, {
      ...real,
      grant: { ...real.grant, approver: 'user:ceo-of-everything', nonce: 'forged-1' },
    });
    await refusedAs(a.id, a.hash, ++n, /^refused: bad signature/);

    // 3. Signed, correctly, by a key that is not the platform's, under the platform's key id.
    const { privateKey } = generateKeyPairSync('ed25519');
    const mine = signDecision(
      { keyId: real.signature.keyId, privateKey },
      { ...real.grant, approver: 'user:ceo-of-everything', nonce: 'forged-2' },
    );
    await handle.signal(approveSignal, mine);
    await refusedAs(a.id, a.hash, ++n, /^refused: bad signature \(key/);

    // 4. A genuine decision for another task (with this task's hash).
    await handle.signal(approveSignal, await token(b.id, { decision: 'approve', hash: a.hash }));
    await refusedAs(a.id, a.hash, ++n, /^refused: signed for another task \(task-/);

    // 5. A genuine decision for this task on another hash (a plan it no longer shows, say).
    await handle.signal(approveSignal, await token(a.id, { decision: 'approve', hash: 'e'.repeat(64) }));
    await refusedAs(a.id, a.hash, ++n, /stale: the decision was made on/);

    // 6. A genuine decision replayed: the first delivery spends its nonce (here it came as the wrong signal), the
    //    second is refused. And through the Update, the same.
    await handle.signal(rejectSignal, real);
    await refusedAs(a.id, a.hash, ++n, /^refused: a signed approve was sent as reject/);
    await handle.signal(approveSignal, real);
    await refusedAs(a.id, a.hash, ++n, /^refused: replayed: nonce/);
    const viaUpdate = await handle.executeUpdate(decideUpdate, { args: [real] });
    expect(viaUpdate).toMatchObject({ accepted: false, status: 'awaiting_approval' });
    expect(viaUpdate.note).toMatch(/replayed/);
    await refusedAs(a.id, a.hash, ++n, /replayed/);

    // 7. A genuine, fresh decision sent in plaintext (no payload keys) while encryption is on.
    const fresh = await token(a.id, { decision: 'approve', hash: a.hash });
    await plain.workflow.getHandle(taskWorkflowId(a.id)).signal('approve', fresh);
    await refusedAs(a.id, a.hash, ++n, /^refused: an unencrypted payload while payload encryption is on/);

    // Then the API's own decision (signed for the authenticated principal) proceeds.
    const accepted = await client.post(`/api/v1/tasks/${a.id}/approve`, { hash: a.hash, reason: 'checked' });
    expect(accepted.status).toBe(200);
    expect(await json(accepted)).toMatchObject({ accepted: true });

    // A decision issued as a token and sent as a signal is the other right way (task b, through the keyed client).
    await keyed.workflow
      .getHandle<typeof agentTaskWorkflow>(taskWorkflowId(b.id))
      .signal(approveSignal, await token(b.id, { decision: 'approve', hash: b.hash }));

    for (const [id, approver] of [
      [a.id, api.subject],
      [b.id, api.subject],
    ] as const) {
      const done = await client.finished(id);
      expect(done.status, done.result?.reason).toBe('completed');
      const acceptedOnes = done.result!.approvals.filter((x) => x.accepted);
      expect(acceptedOnes).toHaveLength(1);
      expect(acceptedOnes[0]).toMatchObject({ approver, verified: { roles: ['admin'] } });
    }
    const done = await client.task(a.id);
    const refused = done.result!.approvals.filter((x) => !x.accepted);
    expect(refused).toHaveLength(n);
    // A forged name is never recorded as the approver: it is a claim.
    expect(refused[0]).toMatchObject({ approver: 'unverified', claimedApprover: 'user:ceo-of-everything' });
    expect(done.result!.approvals.map((x) => x.approver)).not.toContain('user:ceo-of-everything');
  }, 240_000);
});
