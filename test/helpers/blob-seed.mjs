// Deterministic test bytes for the blob store, made as they are read: an AES-256-CTR keystream of a seed, so a stream
// of any size is the same every time, costs no memory, and its SHA-256 is known once it has been read. Plain JS: the
// child processes that measure memory (blob-child.mjs, blob-s3-child.mjs) run it without tsx; blob-data.ts re-exports it.
import { createCipheriv, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';

const PIECE = 256 * 1024;

/**
 * `bytes` bytes of the seed's keystream, in pieces of `piece` bytes; `onPiece` sees each one as it goes out. With
 * `stallAt`, once that many bytes have gone out `onStall` is called and the stream never ends (a put to be killed).
 */
export function seededStream(
  seed,
  bytes,
  { piece = PIECE, throttleMs = 0, onPiece, stallAt = Infinity, onStall } = {},
) {
  const key = createHash('sha256').update(`key:${seed}`).digest();
  const iv = createHash('sha256').update(`iv:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const zeros = Buffer.alloc(piece);
  async function* pieces() {
    let sent = 0;
    for (let left = bytes; left > 0; left -= piece) {
      const out = cipher.update(left >= piece ? zeros : zeros.subarray(0, left));
      onPiece?.(out);
      if (throttleMs) await new Promise((resolve) => setTimeout(resolve, throttleMs));
      yield out;
      sent += out.length;
      if (sent >= stallAt) {
        onStall?.(sent);
        await new Promise(() => undefined);
      }
    }
  }
  return Readable.from(pieces(), { objectMode: false });
}

/** getrusage's peak RSS in bytes: in a child it also counts the parent's copy forked before exec. */
export const ruMaxRssBytes = () => process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB

/** This process's own peak RSS in bytes: VmHWM, the high-water mark of its address space (getrusage where no /proc). */
export function peakRssBytes() {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]) * 1024;
  } catch {
    // not Linux
  }
  return ruMaxRssBytes();
}
