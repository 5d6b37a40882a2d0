/**
 * The real councilDeliberationWorkflow, through POST /api/v1/council/review with the sample's fix as the diff, offline
 * deterministic judges on the platform's council pool. Its parallelism is read from each session's history: the sum of
 * its runJudge activities' run times over the session's wall time (what running the judges one after another would
 * have cost, over what it did cost; >1 only when judges overlap).
 */
import type { Client } from '@temporalio/client';
import { collectSpans } from './history.js';

export interface RealCouncilRun {
  sessionId?: string;
  httpStatus: number;
  /** POST /api/v1/council/review, client side: the review is started (202), not awaited. */
  httpMs: number;
  /** The council workflow's own wall time: server close − start. */
  workflowMs?: number;
  /** Its runJudge activities' run times (started → completed), from its history. */
  judgeRunMs?: number[];
  outcome?: string;
  error?: string;
}

interface ReviewView {
  sessionId?: string;
  href?: string;
  detail?: string;
  status?: string;
  outcome?: { kind: string; record?: { verdict: { decision: string } }; reason?: string };
}

export async function runRealCouncil(
  apiUrl: string,
  client: Client,
  opts: { runs: number; diff: string; specYaml: string; apiKey: string },
): Promise<RealCouncilRun[]> {
  const runs: RealCouncilRun[] = [];
  const headers = { 'content-type': 'application/json', 'x-api-key': opts.apiKey };
  for (let i = 0; i < opts.runs; i++) {
    const t0 = performance.now();
    const res = await fetch(`${apiUrl}/api/v1/council/review`, {
      method: 'POST',
      headers,
      // The evidence a CI run would bring; without it the council rightly refuses to accept. The run number makes
      // each review's input (and so its id) distinct: the same input would return the first review's result.
      body: JSON.stringify({
        diff: opts.diff,
        spec: opts.specYaml,
        gates: [{ gate: 'tests', status: 'pass', reason: `bench run ${i + 1}; covers A1` }],
      }),
    });
    let body = (await res.json()) as ReviewView;
    const run: RealCouncilRun = { sessionId: body.sessionId, httpStatus: res.status, httpMs: performance.now() - t0 };
    if (res.status !== 202 || !body.sessionId || !body.href) {
      run.error = `POST /api/v1/council/review answered ${res.status}: ${body.detail ?? JSON.stringify(body)}`;
    } else {
      for (const deadline = Date.now() + 120_000; body.status !== 'decided' && body.status !== 'escalated';) {
        if (body.status === 'failed' || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 100));
        body = (await (await fetch(`${apiUrl}${body.href}`, { headers })).json()) as ReviewView;
      }
      const d = await client.workflow.getHandle(run.sessionId!).describe();
      if (d.closeTime) {
        run.workflowMs = d.closeTime.getTime() - d.startTime.getTime();
        run.judgeRunMs = (await collectSpans(client, [run.sessionId!])).byType.runJudge?.runMs ?? [];
      } else run.error = `review ${run.sessionId} did not finish: ${body.status}`;
      run.outcome =
        body.outcome?.kind === 'final'
          ? `final:${body.outcome.record?.verdict.decision}`
          : `${body.outcome?.kind}: ${body.outcome?.reason}`;
    }
    runs.push(run);
  }
  return runs;
}
