/**
 * The blob store's entry point. createBlobStore(config, db) gives the backend BLOB_BACKEND names (postgres, the
 * default, or s3), wrapped so that every backend's puts and gets are timed and counted for the metrics
 * (common/metrics.ts) and, for a backend that keeps its bytes outside PostgreSQL, its blobs are recorded in the catalog
 * that retention and the stored-bytes metric read (catalog.ts).
 *
 * A process sets its configured store once per database pool (useBlobStore: the API server, the worker pools);
 * blobStoreOf(db) hands it to code that is given only the pool (common/artifacts.ts), and falls back to the PostgreSQL
 * backend with its defaults.
 */
import { pipeline, Transform, type Readable } from 'node:stream';
import type { Config } from '../config.js';
import type { Db } from '../db.js';
import { blobBytesTotal, blobGetSeconds, blobPutSeconds } from '../metrics.js';
import { forgetBlob, recordBlob, touchBlob } from './catalog.js';
import { createPostgresBlobStore, type UploadSweeper } from './postgres.js';
import type { BlobStore } from './types.js';

export * from './types.js';
export { addBlobRef, releaseBlobRefs, type BlobOwner } from './catalog.js';

/** A store as createBlobStore returns it: the interface, plus the upload sweep when the backend has one. */
export type ConfiguredBlobStore = BlobStore & Partial<UploadSweeper>;

/**
 * The configured backend. `s3` loads ./s3.js only then (the AWS SDK stays out of processes that do not use it) and
 * fails with a message that says what is missing.
 */
export async function createBlobStore(config: Config, db: Db): Promise<ConfiguredBlobStore> {
  if (config.BLOB_BACKEND === 'postgres') {
    return instrumentBlobStore(createPostgresBlobStore(db, { chunkBytes: config.BLOB_CHUNK_BYTES }), db);
  }
  const s3 = await import('./s3.js').catch((err: unknown) => {
    throw new Error(`BLOB_BACKEND is s3, but the S3 backend could not be loaded: ${(err as Error).message}`, {
      cause: err,
    });
  });
  return instrumentBlobStore(s3.createS3BlobStore(config, db), db);
}

/**
 * The store, timed (agent_agency_blob_put_seconds, agent_agency_blob_get_seconds, agent_agency_blob_bytes_total).
 * A backend other than postgres also has its blobs recorded in the catalog: touched before a put of known content,
 * recorded after every put (once the blob is seen stored, under its lock), forgotten after a delete.
 */
export function instrumentBlobStore(store: BlobStore & Partial<UploadSweeper>, db: Db): ConfiguredBlobStore {
  const backend = store.backend;
  const catalogued = backend !== 'postgres';
  const since = (started: number): number => (performance.now() - started) / 1000;
  const wrapped: ConfiguredBlobStore = {
    backend,
    async put(tenantId, body, opts) {
      const started = performance.now();
      try {
        if (catalogued && opts?.expectedSha256) await touchBlob(db, backend, tenantId, opts.expectedSha256);
        const ref = await store.put(tenantId, body, opts);
        if (catalogued) {
          // Under the blob's lock: if retention removed the content between the backend's put (which found it
          // stored) and now, this put fails (put again) instead of returning a reference to nothing.
          await recordBlob(db, { ...ref, backend, mediaType: opts?.mediaType ?? 'application/octet-stream' }, () =>
            store.head(tenantId, ref.sha256).then(Boolean),
          );
        }
        blobPutSeconds.observe({ backend, outcome: 'ok' }, since(started));
        blobBytesTotal.inc({ backend, direction: 'put' }, ref.sizeBytes);
        return ref;
      } catch (err) {
        blobPutSeconds.observe({ backend, outcome: 'error' }, since(started));
        throw err;
      }
    },
    async get(tenantId, sha256) {
      const started = performance.now();
      let source: Readable;
      try {
        source = await store.get(tenantId, sha256);
      } catch (err) {
        blobGetSeconds.observe({ backend, outcome: 'error' }, since(started));
        throw err;
      }
      // Passes the chunks through as they are, counting them; an error of the source fails this stream with the same
      // error, and destroying this stream (a consumer that stops reading) destroys the source.
      let bytes = 0;
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          bytes += chunk.length;
          callback(null, chunk);
        },
      });
      pipeline(source, counted, (err) => {
        blobGetSeconds.observe({ backend, outcome: err ? 'error' : 'ok' }, since(started));
        blobBytesTotal.inc({ backend, direction: 'get' }, bytes);
      });
      return counted;
    },
    head: (tenantId, sha256) => store.head(tenantId, sha256),
    async delete(tenantId, sha256) {
      const existed = await store.delete(tenantId, sha256);
      if (catalogued) await forgetBlob(db, backend, tenantId, sha256);
      return existed;
    },
  };
  if (store.orphanUploads && store.removeUpload) {
    wrapped.orphanUploads = store.orphanUploads.bind(store);
    wrapped.removeUpload = store.removeUpload.bind(store);
  }
  return wrapped;
}

const stores = new WeakMap<Db, ConfiguredBlobStore>();
const postgresStores = new WeakMap<Db, ConfiguredBlobStore>();

/** Sets the process's store for this pool (the one createBlobStore made from the configuration). */
export function useBlobStore(db: Db, store: ConfiguredBlobStore): void {
  stores.set(db, store);
  if (store.backend === 'postgres') postgresStores.set(db, store);
}

/** The process's store for this pool; the PostgreSQL backend with its defaults when none was set. */
export function blobStoreOf(db: Db): ConfiguredBlobStore {
  return stores.get(db) ?? postgresBlobStoreOf(db);
}

/** The PostgreSQL backend on this pool, whatever is configured (blobs stored before a switch to s3 stay there). */
export function postgresBlobStoreOf(db: Db): ConfiguredBlobStore {
  let store = postgresStores.get(db);
  if (!store) {
    store = instrumentBlobStore(createPostgresBlobStore(db), db);
    postgresStores.set(db, store);
  }
  return store;
}
