/** A stand-alone review's workflow id comes from its tenant and its canonical input (api/review-service.ts). */
import { describe, expect, it } from 'vitest';
import { reviewId, type ReviewInput } from '../../api/review-service.js';
import { ReviewIdSchema } from '../../api/schemas.js';

const input = {
  spec: { id: 'FIX-0100', title: 'Fix average()', risk_tier: 3 },
  diff: 'a'.repeat(64),
  consensus: 'weighted',
  gates: [{ gate: 'tests', status: 'pass', reason: 'CI run 42' }],
} as unknown as ReviewInput;

describe('reviewId', () => {
  it('when the input is the same, whatever its key order, then the id is the same and well-formed', () => {
    const reordered = {
      gates: [{ reason: 'CI run 42', status: 'pass', gate: 'tests' }],
      consensus: 'weighted',
      diff: 'a'.repeat(64),
      spec: { risk_tier: 3, title: 'Fix average()', id: 'FIX-0100' },
    } as unknown as ReviewInput;
    expect(reviewId('default', reordered)).toBe(reviewId('default', input));
    expect(ReviewIdSchema.safeParse(reviewId('default', input)).success).toBe(true);
  });

  it('when the tenant or any part of the input differs, then the id differs', () => {
    const id = reviewId('default', input);
    expect(reviewId('tenant-b', input)).not.toBe(id);
    expect(reviewId('default', { ...input, diff: 'b'.repeat(64) })).not.toBe(id);
    expect(reviewId('default', { ...input, consensus: 'unanimous' })).not.toBe(id);
    expect(reviewId('default', { ...input, gates: [] })).not.toBe(id);
  });
});
