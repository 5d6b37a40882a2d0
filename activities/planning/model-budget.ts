/**
 * A task's language-model budget: tokens and US dollars spent so far, and the limits they are checked against.
 * Pure functions over plain JSON objects, because the ledger travels through workflow state and activity payloads.
 * A call's tokens are always charged (they were spent); `exceeded` tells the caller to stop making further calls.
 */

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
}

/** USD per million tokens (config LLM_PRICE_PER_MTOK). */
export interface TokenPrice {
  input: number;
  output: number;
}

export interface BudgetLedger {
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  /** Model calls charged. */
  calls: number;
}

export interface BudgetLimits {
  /** Input plus output tokens. */
  maxTokens: number;
  maxCostUsd: number;
}

export type BudgetExceeded = null | 'tokens' | 'cost';

export interface ChargeResult {
  ledger: BudgetLedger;
  exceeded: BudgetExceeded;
}

export interface BudgetRemaining {
  tokens: number;
  costUsd: number;
}

export function emptyLedger(): BudgetLedger {
  return { inputTokens: 0, outputTokens: 0, costUsd: 0, calls: 0 };
}

/** Cost of a call: tokens × price per million / 1e6, rounded to 1e-9 USD so sums stay stable in JSON. */
export function computeCostUsd(usage: TokenUsage, price: TokenPrice): number {
  requireCount('inputTokens', usage.inputTokens);
  requireCount('outputTokens', usage.outputTokens);
  requireAmount('price.input', price.input);
  requireAmount('price.output', price.output);
  return roundUsd((usage.inputTokens * price.input + usage.outputTokens * price.output) / 1e6);
}

/**
 * Adds one call's usage and cost to the ledger and reports which limit, if any, the new total is over.
 * Tokens are checked before cost, so a call over both reports `tokens`. A total equal to a limit is within it.
 */
export function chargeUsage(
  ledger: BudgetLedger,
  usage: TokenUsage,
  costUsd: number,
  limits: BudgetLimits,
): ChargeResult {
  requireCount('inputTokens', usage.inputTokens);
  requireCount('outputTokens', usage.outputTokens);
  requireAmount('costUsd', costUsd);
  requireLimits(limits);
  const next: BudgetLedger = {
    inputTokens: ledger.inputTokens + usage.inputTokens,
    outputTokens: ledger.outputTokens + usage.outputTokens,
    costUsd: roundUsd(ledger.costUsd + costUsd),
    calls: ledger.calls + 1,
  };
  return { ledger: next, exceeded: exceededLimit(next, limits) };
}

/** What is left under each limit, never below zero. */
export function remaining(ledger: BudgetLedger, limits: BudgetLimits): BudgetRemaining {
  requireLimits(limits);
  return {
    tokens: Math.max(0, limits.maxTokens - totalTokens(ledger)),
    costUsd: Math.max(0, roundUsd(limits.maxCostUsd - ledger.costUsd)),
  };
}

/** The limit the ledger is already over, checked before a call is made. */
export function exceededLimit(ledger: BudgetLedger, limits: BudgetLimits): BudgetExceeded {
  if (totalTokens(ledger) > limits.maxTokens) return 'tokens';
  if (ledger.costUsd > limits.maxCostUsd) return 'cost';
  return null;
}

export function totalTokens(ledger: BudgetLedger): number {
  return ledger.inputTokens + ledger.outputTokens;
}

function roundUsd(value: number): number {
  return Math.round(value * 1e9) / 1e9;
}

function requireCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer`);
}

function requireAmount(name: string, value: number): void {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a non-negative number`);
}

function requireLimits(limits: BudgetLimits): void {
  requireAmount('maxTokens', limits.maxTokens);
  requireAmount('maxCostUsd', limits.maxCostUsd);
}
