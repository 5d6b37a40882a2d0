import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  chargeUsage,
  computeCostUsd,
  emptyLedger,
  exceededLimit,
  remaining,
  type BudgetLedger,
} from '../../activities/planning/model-budget.js';

const LIMITS = { maxTokens: 1000, maxCostUsd: 0.01 };

describe('model budget', () => {
  it('when usage is charged, then tokens, cost and calls add up in a new ledger', () => {
    const start = emptyLedger();

    const { ledger, exceeded } = chargeUsage(start, { inputTokens: 100, outputTokens: 50 }, 0.002, LIMITS);

    expect(ledger).toEqual({ inputTokens: 100, outputTokens: 50, costUsd: 0.002, calls: 1 });
    expect(exceeded).toBeNull();
    expect(start).toEqual(emptyLedger());
  });

  it('when the token total goes over the limit, then exceeded is tokens', () => {
    const { exceeded } = chargeUsage(emptyLedger(), { inputTokens: 900, outputTokens: 101 }, 0, LIMITS);
    expect(exceeded).toBe('tokens');
  });

  it('when the total equals the limits exactly, then nothing is exceeded', () => {
    const { ledger, exceeded } = chargeUsage(emptyLedger(), { inputTokens: 900, outputTokens: 100 }, 0.01, LIMITS);
    expect(exceeded).toBeNull();
    expect(remaining(ledger, LIMITS)).toEqual({ tokens: 0, costUsd: 0 });
  });

  it('when the cost goes over the limit, then exceeded is cost', () => {
    const { exceeded } = chargeUsage(emptyLedger(), { inputTokens: 10, outputTokens: 10 }, 0.0100001, LIMITS);
    expect(exceeded).toBe('cost');
  });

  it('when both limits are passed, then tokens is reported', () => {
    const { exceeded } = chargeUsage(emptyLedger(), { inputTokens: 2000, outputTokens: 0 }, 1, LIMITS);
    expect(exceeded).toBe('tokens');
  });

  it('when the ledger is over a limit, then remaining is zero, never negative', () => {
    const over: BudgetLedger = { inputTokens: 5000, outputTokens: 0, costUsd: 2, calls: 3 };
    expect(remaining(over, LIMITS)).toEqual({ tokens: 0, costUsd: 0 });
    expect(exceededLimit(over, LIMITS)).toBe('tokens');
  });

  it('when cost is computed, then it is tokens times price per million', () => {
    expect(computeCostUsd({ inputTokens: 1_000_000, outputTokens: 2_000_000 }, { input: 3, output: 15 })).toBe(33);
    expect(computeCostUsd({ inputTokens: 1234, outputTokens: 0 }, { input: 0, output: 0 })).toBe(0);
  });

  it('when usage is negative or fractional, then it is rejected', () => {
    expect(() => chargeUsage(emptyLedger(), { inputTokens: -1, outputTokens: 0 }, 0, LIMITS)).toThrow(RangeError);
    expect(() => chargeUsage(emptyLedger(), { inputTokens: 1.5, outputTokens: 0 }, 0, LIMITS)).toThrow(RangeError);
    expect(() => chargeUsage(emptyLedger(), { inputTokens: 1, outputTokens: 0 }, Number.NaN, LIMITS)).toThrow(
      RangeError,
    );
  });

  it('when a ledger crosses the payload boundary as JSON, then it is unchanged', () => {
    const { ledger } = chargeUsage(emptyLedger(), { inputTokens: 3, outputTokens: 4 }, 0.1 + 0.2, LIMITS);
    expect(JSON.parse(JSON.stringify(ledger))).toEqual(ledger);
    expect(ledger.costUsd).toBe(0.3);
  });

  it('when any sequence of calls is charged, then totals are the sums and remaining plus spent covers the limit', () => {
    const call = fc.record({
      inputTokens: fc.nat({ max: 10_000 }),
      outputTokens: fc.nat({ max: 10_000 }),
      costUsd: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    fc.assert(
      fc.property(fc.array(call, { maxLength: 30 }), (calls) => {
        const limits = { maxTokens: 50_000, maxCostUsd: 5 };
        let ledger = emptyLedger();
        let firstExceeded: number | undefined;
        calls.forEach((c, i) => {
          const result = chargeUsage(ledger, c, c.costUsd, limits);
          ledger = result.ledger;
          if (result.exceeded !== null && firstExceeded === undefined) firstExceeded = i;
          if (firstExceeded !== undefined) expect(result.exceeded).not.toBeNull();
        });
        expect(ledger.calls).toBe(calls.length);
        expect(ledger.inputTokens).toBe(calls.reduce((s, c) => s + c.inputTokens, 0));
        expect(ledger.outputTokens).toBe(calls.reduce((s, c) => s + c.outputTokens, 0));
        expect(ledger.costUsd).toBeCloseTo(
          calls.reduce((s, c) => s + c.costUsd, 0),
          6,
        );
        const left = remaining(ledger, limits);
        expect(left.tokens).toBeGreaterThanOrEqual(0);
        expect(left.costUsd).toBeGreaterThanOrEqual(0);
        if (exceededLimit(ledger, limits) === null) {
          expect(left.tokens + ledger.inputTokens + ledger.outputTokens).toBe(limits.maxTokens);
        }
      }),
    );
  });
});
