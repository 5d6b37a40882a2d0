/**
 * Revise rounds revise, and `modify` refines, with model judges (the scripted OpenAI-compatible server through the
 * real openai client, the real stack otherwise): the dissent reaches the judges and the planner, the next round judges
 * the revised plan; a result the council asks to change is refined by the model on the judges' feedback, not by
 * re-running the spec's steps (whose `replace` would find its text gone).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CouncilSession } from '../../workflows/council/session.js';
import { chatRequestOf, startScriptedLlm, toolCallReply, type ScriptedLlm } from '../helpers/scripted-llm.js';
import { json, sampleRepo, useStack, type RunningApi } from '../helpers/stack.js';
import { calculatorSpec, taskClient } from '../helpers/tasks.js';

const PASS = { verdict: 'pass', score: 0.9, reasons: ['fine'], violations: [], evidence: [] };
const FAIL_QUALITY = {
  verdict: 'fail',
  score: 0.6,
  reasons: ['average() has no comment saying what it returns'],
  violations: [{ rule_id: 'quality.undocumented', severity: 'high', waivable: true, message: 'document average()' }],
  evidence: [],
};

type Call = { kind: 'revise' | 'planner' | 'agent' | 'finish' } | { kind: 'judge'; judge: string; phase: string };

function callOf(body: unknown): { call: Call; user: string } {
  const chat = chatRequestOf({ body });
  if (chat.tools.includes('submit_spec'))
    return { call: { kind: chat.user.includes('Revise this working spec') ? 'revise' : 'planner' }, user: chat.user };
  if (chat.tools.includes('finish')) return { call: { kind: 'agent' }, user: chat.user };
  const judge = /You are the (\w+) judge/.exec(chat.system)?.[1] ?? '?';
  const phase = /"phase": "(plan|result)"/.exec(chat.user)?.[1] ?? '?';
  return { call: { kind: 'judge', judge, phase }, user: chat.user };
}

describe('revise rounds and modify with model judges', () => {
  let llm: ScriptedLlm;
  let api: RunningApi;
  const client = taskClient(() => api);
  /** Result-phase quality verdicts still to fail (the modify test sets it). */
  let qualityFailures = 0;

  beforeAll(async () => {
    llm = await startScriptedLlm((request) => {
      const { call, user } = callOf(request.body);
      if (call.kind === 'revise') {
        // The planner revises on the dissent: the chmod step the technical judge objected to is dropped.
        return toolCallReply('submit_spec', { ...calculatorSpec(), title: 'Fix average() without loosening modes' });
      }
      if (call.kind === 'agent') {
        // A refinement: the model acts on the judges' feedback (a comment), once, then finishes.
        if (user.includes('No actions yet.') && user.includes('quality.undocumented'))
          return toolCallReply('write_file', { path: 'src/NOTES.md', content: 'average() returns sum / count.\n' });
        return toolCallReply('finish', { summary: 'documented' });
      }
      if (call.kind === 'judge' && call.phase === 'result' && call.judge === 'quality' && qualityFailures > 0) {
        qualityFailures--;
        return toolCallReply('submit_verdict', FAIL_QUALITY);
      }
      if (call.kind === 'judge') return toolCallReply('submit_verdict', PASS);
      return undefined;
    });
  });
  afterAll(async () => {
    await llm?.close();
  });
  useStack((stack) => ({ api } = stack), {
    env: () => ({
      LLM_PROVIDER: 'openai',
      LLM_BASE_URL: llm.url,
      LLM_API_KEY: 'test-key',
      LLM_MODEL: 'scripted-model',
      COUNCIL_CONSENSUS_TIMEOUT: '20s',
      TASK_CLARIFICATION_TIMEOUT: '2s',
    }),
  });

  it('when a judge dissents on a plan, then the planner revises it on the dissent and the next round judges the revised plan', async () => {
    const id = await client.submit({
      title: 'Loosen permissions',
      workspace: await sampleRepo(),
      spec: calculatorSpec({
        steps: [...(calculatorSpec().steps as unknown[]), { kind: 'command', run: ['chmod', '777', 'src'] }],
      }),
    });
    const done = await client.finished(id, 120_000);
    expect(done.status).toBe('completed');
    const result = done.result!;
    const first = await json<{ session: CouncilSession }>(
      await client.get(`/api/v1/council/sessions/${result.verdicts[0]!.sessionId}`),
    );
    // Two rounds on two different plans: the first with the chmod step, the second on the planner's revision.
    expect(first.session.rounds).toHaveLength(2);
    expect(new Set(first.session.plans).size).toBe(2);
    expect(first.session.rounds[0]!.find((v) => v.judge_id === 'technical')!.verdict).toBe('fail');
    expect(first.session.rounds[1]!.map((v) => v.verdict)).toEqual(['pass', 'pass', 'pass', 'pass']);
    const requests = llm.requests.map((r) => callOf(r.body));
    const revise = requests.find((r) => r.call.kind === 'revise')!;
    expect(revise.user).toContain('commands.chmod-777');
    // The judges of the second round saw the dissent, and no chmod left in the plan's findings.
    const secondRound = requests.filter(
      (r) =>
        r.call.kind === 'judge' &&
        r.call.phase === 'plan' &&
        /"dissent": \[\s*\{[\s\S]*commands\.chmod-777/.test(r.user),
    );
    expect(secondRound.length).toBe(4);
    for (const r of secondRound) expect(r.user).toContain('Fix average() without loosening modes');
    // The revised plan was planned and judged again, and it is what ran.
    expect(result.verdicts.map((v) => [v.phase, v.verdict.decision])).toEqual([
      ['plan', 'accept'],
      ['plan', 'accept'],
      ['result', 'accept'],
    ]);
    expect(result.steps.map((s) => s.kind)).toEqual(['replace']);
  });

  it('when the council asks to change a result made by explicit steps, then the model refines it on the feedback instead of re-running the steps', async () => {
    qualityFailures = 3; // every round of the first result session
    const id = await client.submit({
      title: 'Fix and document',
      workspace: await sampleRepo(),
      spec: calculatorSpec(),
    });
    const done = await client.finished(id, 120_000);
    expect(done.status).toBe('completed');
    const result = done.result!;
    expect(result.verdicts.map((v) => [v.phase, v.verdict.decision])).toEqual([
      ['plan', 'accept'],
      ['result', 'modify'],
      ['result', 'accept'],
    ]);
    expect(result.verdicts[1]!.verdict.remediation.join(' ')).toContain('quality.undocumented');
    // The replace step ran once; the refinement's action came from the model, on the judges' feedback.
    expect(result.steps.map((s) => [s.kind, s.ok])).toEqual([
      ['replace', true],
      ['write_file', true],
    ]);
    expect(result.filesChanged.sort()).toEqual(['src/NOTES.md', 'src/calculator.js']);
  });
});
