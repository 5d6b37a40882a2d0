/**
 * Sends a blob (an artifact) as an HTTP answer without holding it in memory: the store's verified stream is piped to
 * the response, with the content type, length and an ETag of its digest.
 *
 * The first chunk is read (and so verified) before the status line goes out: a blob found corrupt or missing at its
 * start becomes a 500 problem, logged by the error handler. A corruption found later, once the headers are sent,
 * aborts the response: the connection closes short of the announced Content-Length, so a client sees a failed
 * download, never a complete body with the wrong bytes.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import type { Logger } from '../common/logger.js';

export interface BlobAnswer {
  sha256: string;
  mediaType: string;
  sizeBytes: number;
  stream: Readable;
}

export async function sendBlob(req: Request, res: Response, log: Logger, blob: BlobAnswer): Promise<void> {
  const { stream } = blob;
  res.type(blob.mediaType).setHeader('etag', `"${blob.sha256}"`);
  // Content-addressed: an ETag the client has is the same bytes (304), and HEAD needs no bytes at all.
  if (req.fresh || req.method === 'HEAD') {
    stream.destroy();
    if (!req.fresh) res.setHeader('content-length', String(blob.sizeBytes));
    res.status(req.fresh ? 304 : 200).end();
    return;
  }
  let first: Buffer | null;
  try {
    first = await firstChunk(stream);
  } catch (err) {
    stream.destroy();
    res.removeHeader('etag');
    throw err; // before any byte: the error handler logs it and answers 500
  }
  res.status(200).setHeader('content-length', String(blob.sizeBytes));
  if (first === null) {
    res.end();
    return;
  }
  stream.unshift(first);
  try {
    await pipeline(stream, res);
  } catch (err) {
    // Headers (and perhaps some bytes) are out: the only honest answer left is to cut the connection short.
    if (!res.destroyed) res.destroy(err as Error);
    if ((err as { code?: string }).code !== 'ERR_STREAM_PREMATURE_CLOSE') {
      log.error(
        { err, sha256: blob.sha256, correlationId: res.locals.correlationId as unknown },
        'blob stream failed after the headers were sent; response aborted',
      );
    }
  }
}

/** The stream's first chunk (null for an empty stream), or its error. */
function firstChunk(stream: Readable): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const settle = (chunk: Buffer | null): void => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      resolve(chunk);
    };
    const onReadable = (): void => {
      const chunk = stream.read() as Buffer | null;
      if (chunk !== null || stream.readableEnded) settle(chunk); // else: wait for the next 'readable' or 'end'
    };
    const onEnd = (): void => settle(null);
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    // Stays attached (a no-op once settled) so an error between here and the pipeline is never unhandled.
    stream.on('error', reject);
  });
}
