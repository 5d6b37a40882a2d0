import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseDuration, PROJECT_ROOT, s3Credentials } from '../../common/config.js';

const run = promisify(execFile);

describe('configuration', () => {
  it('when nothing is set, then the documented defaults apply', () => {
    const config = loadConfig({});
    expect(config.API_PORT).toBe(8080);
    expect(config.DATABASE_URL).toBe('postgres://postgres@127.0.0.1:5432/agency');
    expect(config.TEMPORAL_NAMESPACE).toBe('agency');
    expect(config.WORKER_QUEUES).toEqual([
      'orchestration',
      'planning',
      'council',
      'execution',
      'inference',
      'federation',
      'decryptor',
    ]);
    expect(config.WORKER_SHUTDOWN_GRACE).toBe(30_000);
    expect(config.LLM_PROVIDER).toBe('offline');
  });

  it('when several variables are bad, then one error names each of them with what was given', () => {
    let error: unknown;
    try {
      loadConfig({
        API_PORT: 'abc',
        DATABASE_URL: 'mysql://x',
        WORKER_QUEUES: 'planning,cooking',
        TEMPORAL_TLS: 'maybe',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const names = (error as ConfigError).problems.map((p) => p.variable).sort();
    expect(names).toEqual(['API_PORT', 'DATABASE_URL', 'TEMPORAL_TLS', 'WORKER_QUEUES']);
    expect((error as ConfigError).message).toMatch(/API_PORT: .*\(got "abc"\)/);
  });

  it('when a port is out of range or a duration malformed, then the variable is named', () => {
    expect(() => loadConfig({ API_PORT: '70000' })).toThrow(/API_PORT: expected a port between 1 and 65535/);
    expect(() => loadConfig({ WORKER_SHUTDOWN_GRACE: 'soon' })).toThrow(/WORKER_SHUTDOWN_GRACE: expected a duration/);
    expect(() => loadConfig({ TEMPORAL_TLS_CERT_PATH: '/x.pem' })).toThrow(/TEMPORAL_TLS_KEY_PATH/);
  });

  it('when a model provider is chosen without its model or key, then start-up names the missing variable', () => {
    expect(() => loadConfig({ LLM_PROVIDER: 'openai', LLM_API_KEY: 'k' })).toThrow(
      /LLM_MODEL: required when LLM_PROVIDER is openai/,
    );
    expect(() => loadConfig({ LLM_PROVIDER: 'anthropic' })).toThrow(/LLM_MODEL/);
    expect(() => loadConfig({ LLM_PROVIDER: 'openai', LLM_MODEL: 'm' })).toThrow(/LLM_API_KEY/);
    expect(
      loadConfig({ LLM_PROVIDER: 'openai', LLM_MODEL: 'llama3', LLM_BASE_URL: 'http://127.0.0.1:11434/v1' }).LLM_MODEL,
    ).toBe('llama3');
  });

  it('when durations are given, then they are read in milliseconds', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('7d')).toBe(604_800_000);
  });

  it('when nothing about blobs is set, then the PostgreSQL backend with 1 MiB chunks and a 7-day retention applies', () => {
    expect(loadConfig({})).toMatchObject({
      BLOB_BACKEND: 'postgres',
      BLOB_CHUNK_BYTES: 1024 * 1024,
      BLOB_RETENTION_AGE: 7 * 86_400_000,
      BLOB_RETENTION_INTERVAL: 3_600_000,
      S3_REGION: 'us-east-1',
      S3_FORCE_PATH_STYLE: true,
      S3_ACCESS_KEY_ID_REF: 'AWS_ACCESS_KEY_ID',
      S3_SECRET_ACCESS_KEY_REF: 'AWS_SECRET_ACCESS_KEY',
    });
  });

  it('when the S3 backend is chosen, then it needs a bucket, and its credentials are named, never given', () => {
    expect(() => loadConfig({ BLOB_BACKEND: 's3' })).toThrow(/S3_BUCKET: required when BLOB_BACKEND is s3/);
    expect(() => loadConfig({ BLOB_BACKEND: 'gcs' })).toThrow(/BLOB_BACKEND/);
    expect(() => loadConfig({ BLOB_CHUNK_BYTES: '100' })).toThrow(/BLOB_CHUNK_BYTES/);
    // Something other than a variable's name (a pasted key, say) is refused.
    expect(() => loadConfig({ S3_SECRET_ACCESS_KEY_REF: 'lower/case+slashes' })).toThrow(/S3_SECRET_ACCESS_KEY_REF/);
    expect(() => loadConfig({ S3_SECRET_ACCESS_KEY_REF: 'lower/case+slashes' })).not.toThrow(/slashes/);
    const config = loadConfig({
      BLOB_BACKEND: 's3',
      S3_BUCKET: 'agency-blobs',
      S3_ENDPOINT: 'http://127.0.0.1:9000',
      S3_ACCESS_KEY_ID_REF: 'BLOB_KEY',
      S3_SECRET_ACCESS_KEY_REF: 'BLOB_SECRET',
      BLOB_RETENTION_AGE: '2d',
    });
    expect(config.BLOB_RETENTION_AGE).toBe(2 * 86_400_000);
    expect(s3Credentials(config, { BLOB_KEY: 'id', BLOB_SECRET: 'secret' })).toEqual({
      accessKeyId: 'id',
      secretAccessKey: 'secret',
    });
    expect(s3Credentials(config, {})).toBeUndefined(); // the SDK's default chain
    expect(() => s3Credentials(config, { BLOB_KEY: 'id' })).toThrow(/BLOB_SECRET/);
  });

  it.each([
    ['api/server.ts', { API_PORT: 'not-a-port' }, 'API_PORT'],
    ['workers/main.ts', { WORKER_QUEUES: 'orchestration,nope' }, 'WORKER_QUEUES'],
  ])(
    'when %s starts with bad config, then it exits 78 naming the variable before touching anything',
    async (entry, env, variable) => {
      const result = await run(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, entry)], {
        cwd: PROJECT_ROOT,
        env: { PATH: process.env.PATH, ...env },
        timeout: 30_000,
      }).then(
        () => ({ code: 0, stderr: '' }),
        (err: { code: number; stderr: string }) => err,
      );
      expect(result.code).toBe(78);
      expect(result.stderr).toContain('Invalid configuration');
      expect(result.stderr).toContain(`${variable}:`);
    },
  );
});
