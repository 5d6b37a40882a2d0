/** Test bytes for the blob store (seededStream, from blob-seed.mjs), their digest, and draining a stream. */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { seededStream } from './blob-seed.mjs';

export { seededStream };

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
