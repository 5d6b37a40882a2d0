import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The Temporal SDK's native module does not work in worker threads: one process per test file.
    pool: 'forks',
    testTimeout: 90_000,
    hookTimeout: 120_000,
    // Two cores: more parallel files only queue up behind each other and make fault timings flaky.
    maxWorkers: 2,
    projects: [
      // Pure logic: no servers.
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts', 'test/tools/**/*.test.ts'] } },
      // Against a real Temporal dev server and PostgreSQL, started once per run by the global setup. test/browser/ also
      // starts a dev server of its own with the Web UI on, and drives Debian's chromium (test/helpers/chromium.ts).
      {
        extends: true,
        test: {
          name: 'stack',
          include: ['test/{api,workflows,faults,replay,db,browser}/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});
