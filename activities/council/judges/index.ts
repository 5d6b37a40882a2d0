/**
 * The four judges of the council as deterministic, offline rule sets (CAWS.md, "Council"), one module each. Each reads
 * a JudgeInput and returns a JudgeVerdict with its violations and the evidence behind them (refs `file:line`,
 * `gate:<name>`, `command:<n>`, `spec:<field>`). Pure: no I/O, no clock. Scoring and waivers: ./shared.ts.
 */
import type { JudgeId, JudgeInput, JudgeVerdict } from '../../../workflows/council/definitions.js';
import { evaluateConstitutional } from './constitutional.js';
import { evaluateIntegration } from './integration.js';
import { evaluateQuality } from './quality.js';
import { evaluateTechnical } from './technical.js';

export { applyWaivers, JUDGE_VERSIONS } from './shared.js';
export { LARGE_FILE_LINES } from './technical.js';
export { evaluateConstitutional, evaluateIntegration, evaluateQuality, evaluateTechnical };

export const JUDGE_EVALUATORS: Readonly<Record<JudgeId, (input: JudgeInput) => JudgeVerdict>> = {
  constitutional: evaluateConstitutional,
  technical: evaluateTechnical,
  quality: evaluateQuality,
  integration: evaluateIntegration,
};
