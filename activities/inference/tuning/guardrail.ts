/**
 * The quality guardrail: a candidate's outputs on seeded probe rows, sent as separate requests through its batcher
 * (so they are batched as serving would batch them), compared with the baseline's (the version's own settings, each
 * row run alone). Beyond `tolerance` (largest absolute difference of any output value) the candidate is rejected, and
 * the remediation says which setting caused it: each setting that differs from the baseline is reverted on its own and
 * the probe re-run; the settings whose reversal alone restores the outputs are the culprits, with advice on what to
 * try instead.
 */
import {
  type Candidate,
  type Guardrail,
  type GuardrailReport,
  type Remediation,
  revertSetting,
  settingDifferences,
} from '../../../workflows/tuning/definitions.js';
import { seededRows } from './measure.js';
import { createRng } from './rng.js';
import { openCandidate, type CandidateSession } from './session.js';

const PROBE_SEED = 0x5eed;

export async function probeOutputs(
  bytes: Uint8Array,
  candidate: Candidate,
  probeRows: number,
  mode: 'batched' | 'alone',
): Promise<Float32Array[]> {
  const session = await openCandidate(bytes, candidate);
  try {
    return await probe(session, probeRows, mode);
  } finally {
    await session.close();
  }
}

/** The probe rows' outputs from an open session: each row its own request, batched or run alone. */
export async function probe(
  session: CandidateSession,
  probeRows: number,
  mode: 'batched' | 'alone',
): Promise<Float32Array[]> {
  const rows = seededRows(probeRows, session.width, createRng(PROBE_SEED));
  if (mode === 'batched') return (await Promise.all(rows.map((r) => session.batcher.submit([r])))).map((o) => o[0]!);
  const out: Float32Array[] = [];
  for (const r of rows) out.push((await session.runDirect([r]))[0]!);
  return out;
}

const argmax = (row: Float32Array): number => row.reduce((best, v, i) => (v > row[best]! ? i : best), 0);

export function compareOutputs(
  a: readonly Float32Array[],
  b: readonly Float32Array[],
): { maxAbsDiff: number; agreement: number } {
  let maxAbsDiff = 0;
  let agree = 0;
  a.forEach((row, i) => {
    const other = b[i]!;
    if (other.length !== row.length) maxAbsDiff = Infinity;
    for (let j = 0; j < Math.min(row.length, other.length); j++) {
      const d = Math.abs(row[j]! - other[j]!);
      maxAbsDiff = Number.isNaN(d) ? Infinity : Math.max(maxAbsDiff, d);
    }
    if (argmax(row) === argmax(other)) agree++;
  });
  return { maxAbsDiff, agreement: a.length === 0 ? 1 : agree / a.length };
}

/** What to try instead when a setting changes the outputs. */
function adviceFor(setting: string, candidate: Candidate): string {
  if (setting === 'session.config.optimization.enable_gelu_approximation')
    return 'keep optimization.enable_gelu_approximation off (the tanh approximation of GELU changes outputs); tune threads and batching instead';
  if (setting.startsWith('session.config.'))
    return `leave the session config entry ${setting.slice('session.config.'.length)} at the baseline's value`;
  if (setting === 'session.graphOptimizationLevel')
    return `use a lower graph optimisation level than '${candidate.session.graphOptimizationLevel}' (e.g. 'basic'), whose fusions keep the numerics`;
  if (setting.startsWith('serving.'))
    return `outputs depend on batch composition: keep ${setting} at the baseline's value and check the model for cross-row operations`;
  return `keep ${setting} at the baseline's value`;
}

export async function checkGuardrail(
  bytes: Uint8Array,
  session: CandidateSession,
  candidate: Candidate,
  baseline: Candidate,
  guardrail: Guardrail,
  baselineOutputs: Float32Array[],
): Promise<GuardrailReport> {
  const outputs = await probe(session, guardrail.probeRows, 'batched');
  const { maxAbsDiff, agreement } = compareOutputs(outputs, baselineOutputs);
  const report: GuardrailReport = {
    passed: maxAbsDiff <= guardrail.tolerance,
    maxAbsDiff,
    tolerance: guardrail.tolerance,
    agreement,
  };
  if (report.passed) return report;
  report.remediation = await remediate(bytes, candidate, baseline, guardrail, baselineOutputs);
  return report;
}

async function remediate(
  bytes: Uint8Array,
  candidate: Candidate,
  baseline: Candidate,
  guardrail: Guardrail,
  baselineOutputs: Float32Array[],
): Promise<Remediation> {
  const changes: Remediation['changes'] = [];
  for (const setting of settingDifferences(candidate, baseline)) {
    const reverted = revertSetting(candidate, baseline, setting);
    const outputs = await probeOutputs(bytes, reverted, guardrail.probeRows, 'batched');
    changes.push({
      setting,
      candidate: valueOf(candidate, setting),
      baseline: valueOf(baseline, setting),
      maxAbsDiffWhenReverted: compareOutputs(outputs, baselineOutputs).maxAbsDiff,
    });
  }
  const culprits = changes.filter((c) => c.maxAbsDiffWhenReverted <= guardrail.tolerance).map((c) => c.setting);
  const advice =
    culprits.length > 0
      ? culprits.map((s) => adviceFor(s, candidate))
      : [
          'no single setting explains the difference: revert the candidate to the baseline and change one setting at a time',
        ];
  return { culprits, changes, advice };
}

function valueOf(c: Candidate, setting: string): unknown {
  const [area, key, ...rest] = setting.split('.');
  if (area === 'serving') return c.serving[key as keyof Candidate['serving']];
  if (key === 'config') return c.session.configEntries?.[rest.join('.')];
  return (c.session as Record<string, unknown>)[key!];
}
