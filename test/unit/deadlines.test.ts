import { describe, expect, it } from 'vitest';
import { LATE_TIMER_MS, lateDeadline, withOutages } from '../../workflows/task/deadlines.js';

describe('deadlines a crash consumed', () => {
  it('when a deadline is handled in time, then nothing is named; when late, then the outage is', () => {
    expect(lateDeadline('task deadline', 10_000, 10_000 + LATE_TIMER_MS)).toBeUndefined();
    expect(lateDeadline('task deadline', 10_000, 10_000 + LATE_TIMER_MS + 7_000)).toBe(
      `the task deadline passed while no orchestration worker was running (handled ${(LATE_TIMER_MS + 7_000) / 1000} s late)`,
    );
  });

  it('when there are outages, then the reason names them after the decision; without, it is unchanged', () => {
    expect(withOutages('deadline x passed', undefined)).toBe('deadline x passed');
    expect(withOutages('deadline x passed', [])).toBe('deadline x passed');
    expect(withOutages('deadline x passed', ['a', 'b'])).toBe('deadline x passed; consumed by infrastructure: a; b');
    expect(withOutages('no approval', 'late')).toBe('no approval; consumed by infrastructure: late');
  });
});
