/**
 * The constitutional judge: budgets, scope, waivers, evidence, secrets, unfinished-work markers, debug logging.
 */
import type { JudgeInput, JudgeVerdict, Severity, Violation } from '../../../workflows/council/definitions.js';
import type { ReviewFinding } from '../../../workflows/task/definitions.js';
import { checkBudget, checkScope, REVIEW_RULES, scanAddedLines } from '../review.js';
import { changedPaths, changesOf, Findings, refOf, verdictOf, type ChangedFile } from './shared.js';

/** Secrets and unfinished-work markers are never waivable (CAWS.md); scope, budget and debug logging are. */
function fromFinding(finding: ReviewFinding, file?: ChangedFile): Violation {
  const line = file && !file.linesKnown ? undefined : finding.line;
  return {
    rule_id: finding.rule,
    severity: finding.severity,
    waivable: !(finding.rule === REVIEW_RULES.unfinishedMarker || finding.rule.startsWith('secret.')),
    message: finding.message,
    ...(finding.file !== undefined ? { file: finding.file } : {}),
    ...(line !== undefined ? { line } : {}),
  };
}

export function evaluateConstitutional(input: JudgeInput): JudgeVerdict {
  const f = new Findings();
  const changes = changesOf(input);
  if (!changes) {
    f.uncertain.push('no diff to judge in the result phase: budget, scope and content checks could not run');
    f.note('static_check', 'diff', 'missing');
    return verdictOf('constitutional', input, f, 'nothing checked');
  }
  const paths = changedPaths(input, changes);
  const scope = { scopeIn: input.spec.scope.in, scopeOut: input.spec.scope.out ?? [] };

  // Scope, on every changed or planned path.
  for (const path of paths) {
    for (const finding of checkScope(path, scope)) f.add(fromFinding(finding), path);
  }
  f.note('static_check', 'spec:scope', `${paths.length} path(s) checked against scope.in/out`);

  // Budget: counted on the diff; estimated from step contents in the plan phase.
  const loc = changes.reduce((n, c) => n + c.added.length + c.removed.length, 0);
  for (const finding of checkBudget(paths.length, loc, input.budget)) f.add(fromFinding(finding), 'spec:change_budget');
  f.note(
    'static_check',
    'spec:change_budget',
    input.phase === 'plan'
      ? `heuristic estimate from step contents: ${paths.length} file(s), ~${loc} line(s); budget ${input.budget.maxFiles} / ${input.budget.maxLoc}`
      : `${paths.length} file(s), ${loc} line(s) changed; budget ${input.budget.maxFiles} / ${input.budget.maxLoc}`,
  );

  // Content: secrets, unfinished-work markers, debug logging on added lines.
  let scanned = 0;
  for (const file of changes) {
    scanned += file.added.length;
    for (const finding of scanAddedLines(file.path, file.added)) {
      const v = fromFinding(finding, file);
      f.add(v, refOf(file, finding.line));
    }
  }
  f.note('static_check', input.phase === 'plan' ? 'spec:steps' : 'diff', `${scanned} added line(s) scanned`);

  // Evidence: the gates that show the change works.
  const declared = (input.spec.gates ?? []).map((g) => g.name);
  const noGatesSeverity: Severity = input.tier === 3 ? 'medium' : 'high';
  if (input.phase === 'plan') {
    if (declared.length === 0) {
      f.add(
        {
          rule_id: 'evidence.no-gates',
          severity: noGatesSeverity,
          waivable: true,
          message: 'the spec declares no gate',
        },
        'spec:gates',
      );
    } else {
      f.note('static_check', 'spec:gates', `gates declared: ${declared.join(', ')}`);
    }
  } else {
    if (input.gates.length === 0) {
      f.add(
        {
          rule_id: 'evidence.no-gates',
          severity: noGatesSeverity,
          waivable: true,
          message: 'no gate ran on the result',
        },
        'gates',
      );
    }
    const ran = new Set(input.gates.map((g) => g.gate));
    for (const name of declared.filter((n) => !ran.has(n))) {
      f.add(
        {
          rule_id: 'evidence.gate-missing',
          severity: 'high',
          waivable: true,
          message: `declared gate ${name} has no result`,
        },
        `gate:${name}`,
      );
    }
    for (const gate of input.gates) {
      f.note('test', `gate:${gate.gate}`, `${gate.status}: ${gate.reason}`);
      if (gate.status === 'waived' && !input.activeWaivers.some((w) => w.gates.includes(gate.gate))) {
        f.add(
          {
            rule_id: 'evidence.waiver-unknown',
            severity: 'high',
            waivable: false,
            message: `gate ${gate.gate} is marked waived but no active waiver covers it`,
          },
          `gate:${gate.gate}`,
        );
      }
    }
  }
  return verdictOf(
    'constitutional',
    input,
    f,
    `scope, budget, content of ${changes.length} change(s) and evidence checked`,
  );
}
