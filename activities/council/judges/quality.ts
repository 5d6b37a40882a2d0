/**
 * The quality judge: acceptance criteria covered by tests that ran and passed (the test reports' mapping, never a
 * gate's own claim), failed gates, a test gate planned.
 */
import type { JudgeInput, JudgeVerdict } from '../../../workflows/council/definitions.js';
import { Findings, verdictOf } from './shared.js';

const TESTS_GATE_NAME = /(^|[-_])(tests?|unit|e2e|integration)([-_]|$)/i;

function isTestsGate(input: JudgeInput, name: string): boolean {
  const declared = (input.spec.gates ?? []).find((g) => g.name === name) as { kind?: unknown } | undefined;
  return declared?.kind === 'tests' || TESTS_GATE_NAME.test(name);
}

export function evaluateQuality(input: JudgeInput): JudgeVerdict {
  const f = new Findings();
  const acceptance = input.spec.acceptance ?? [];
  const ids = acceptance.map((a) => a.id);

  if (acceptance.length === 0) {
    f.add(
      {
        rule_id: 'acceptance.missing',
        severity: input.tier === 3 ? 'low' : 'high',
        waivable: true,
        message: `the spec has no acceptance criteria (tier ${input.tier})`,
      },
      'spec:acceptance',
    );
  }
  for (const id of new Set(ids.filter((id, i) => ids.indexOf(id) !== i))) {
    f.add(
      { rule_id: 'acceptance.duplicate-id', severity: 'low', waivable: true, message: `${id} is used twice` },
      'spec:acceptance',
    );
  }
  for (const a of acceptance) {
    if (!a.given.trim() || !a.when.trim() || !a.then.trim()) {
      f.add(
        {
          rule_id: 'acceptance.incomplete',
          severity: 'low',
          waivable: true,
          message: `${a.id} lacks given, when or then`,
        },
        `spec:acceptance.${a.id}`,
      );
    }
  }

  if (input.phase === 'plan') {
    const gates = input.spec.gates ?? [];
    if (gates.length === 0) {
      f.uncertain.push('no gate is declared: nothing will show that the acceptance criteria are met');
    } else if (!gates.some((g) => isTestsGate(input, g.name))) {
      f.add(
        {
          rule_id: 'tests.none-planned',
          severity: input.tier === 3 ? 'low' : 'medium',
          waivable: true,
          message: 'no test gate is declared',
        },
        'spec:gates',
      );
    }
    const planned = (input.plannedFiles?.length ?? 0) + (input.spec.steps?.length ?? 0) + input.commands.length;
    if (planned === 0) f.uncertain.push('the plan has no step, file or command: it changes nothing');
    f.note(
      'static_check',
      'spec:acceptance',
      `${acceptance.length} acceptance criterion/criteria; ${gates.length} gate(s) declared`,
    );
    return verdictOf(
      'quality',
      input,
      f,
      `${acceptance.length} acceptance criteria and ${gates.length} gate(s) planned`,
    );
  }

  if (input.gates.length === 0) f.uncertain.push('no gate results: the acceptance criteria cannot be verified');
  for (const gate of input.gates) {
    f.note('test', `gate:${gate.gate}`, `${gate.status}: ${gate.reason}`);
    if (gate.status === 'fail') {
      f.add(
        {
          rule_id: `${gate.gate}.failed`,
          severity: 'high',
          waivable: true,
          message: `${isTestsGate(input, gate.gate) ? 'test gate' : 'gate'} ${gate.gate} failed: ${gate.reason}`,
        },
        `gate:${gate.gate}`,
        'test',
      );
    }
  }
  // Coverage is what the test reports show, never what a gate or the spec claims: a criterion is covered when tests
  // mapped to it (its id in the test's name, e.g. "A1: average divides by the count") ran and passed, and none failed.
  for (const id of new Set(ids)) {
    const mapped = input.gates.flatMap((g) => (g.acceptance ?? []).filter((a) => a.id === id).map((a) => ({ g, a })));
    const failed = mapped.filter(({ a }) => a.failed > 0);
    const passed = mapped.reduce((n, { a }) => n + a.passed, 0);
    if (failed.length) {
      f.add(
        {
          rule_id: 'acceptance.failed',
          severity: 'high',
          waivable: true,
          message: `${id}: ${failed.reduce((n, { a }) => n + a.failed, 0)} test(s) mapped to it failed in ${failed.map(({ g }) => g.gate).join(', ')}`,
        },
        `gate:${failed[0]!.g.gate}`,
        'test',
      );
    } else if (passed > 0) {
      f.note('test', `gate:${mapped[0]!.g.gate}`, `${id} covered: ${passed} test(s) mapped to it ran and passed`);
    } else {
      f.uncertain.push(
        mapped.length
          ? `${id}: the tests mapped to it were skipped`
          : `${id}: no test in the gates' reports is mapped to it (name a test after it, e.g. "${id}: …")`,
      );
    }
  }
  return verdictOf(
    'quality',
    input,
    f,
    `${ids.length} acceptance criteria covered by ${input.gates.length} gate result(s)`,
  );
}
