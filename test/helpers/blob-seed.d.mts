// Types for test/helpers/blob-seed.mjs (plain JS, so the memory-measuring children run it without tsx).
import type { Readable } from 'node:stream';
export function seededStream(
  seed: string,
  bytes: number,
  opts?: {
    piece?: number;
    throttleMs?: number;
    onPiece?: (b: Buffer) => void;
    stallAt?: number;
    onStall?: (sent: number) => void;
  },
): Readable;
export function ruMaxRssBytes(): number;
export function peakRssBytes(): number;
