/**
 * Deterministic test bytes for the blob store, made as they are read: an AES-256-CTR keystream of a seed, so a stream
 * of any size is the same every time, costs no memory, and its SHA-256 is known once it has been read.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';

const PIECE = 256 * 1024;

/** `bytes` bytes of the seed's keystream, in pieces of `piece` bytes; `onPiece` sees each one as it goes out. */
export function seededStream(
  seed: string,
  bytes: number,
  {
    piece = PIECE,
    throttleMs = 0,
    onPiece,
  }: { piece?: number; throttleMs?: number; onPiece?: (b: Buffer) => void } = {},
): Readable {
  const key = createHash('sha256').update(`key:${seed}`).digest();
  const iv = createHash('sha256').update(`iv:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const zeros = Buffer.alloc(piece);
  async function* pieces(): AsyncGenerator<Buffer> {
    for (let left = bytes; left > 0; left -= piece) {
      const out = cipher.update(left >= piece ? zeros : zeros.subarray(0, left));
      onPiece?.(out);
      if (throttleMs) await new Promise((r) => setTimeout(r, throttleMs));
      yield out;
    }
  }
  return Readable.from(pieces(), { objectMode: false });
}

/** The SHA-256 of seededStream(seed, bytes), computed by streaming it. */
export async function seededSha256(seed: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of seededStream(seed, bytes) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest('hex');
}

/** Reads a stream to its end or its error: the bytes that arrived, and the error if any. */
export async function drain(stream: Readable): Promise<{ bytes: Buffer; error?: unknown }> {
  const parts: Buffer[] = [];
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) parts.push(chunk);
    return { bytes: Buffer.concat(parts) };
  } catch (error) {
    return { bytes: Buffer.concat(parts), error };
  }
}
