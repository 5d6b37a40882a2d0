/**
 * Sample repositories for the tests, the benchmark and the history recorder: a copy of samples/<name> in a fresh git
 * repository. No vitest here, so that the benchmark and the recorder can use it outside a test run.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../common/config.js';

const run = promisify(execFile);

/**
 * A new directory `<dirPrefix>…` (mkdtemp) holding a copy of samples/<sample> as a git repository on `main`, with one
 * commit by `author`.
 */
export async function sampleGitRepo(
  dirPrefix: string,
  sample = 'calculator',
  author = { name: 'test', email: 'test@example.com' },
): Promise<string> {
  const dir = await mkdtemp(dirPrefix);
  await cp(path.join(PROJECT_ROOT, 'samples', sample), dir, { recursive: true });
  const git = (...args: string[]): Promise<unknown> =>
    run('git', ['-c', `user.name=${author.name}`, '-c', `user.email=${author.email}`, ...args], { cwd: dir });
  await git('init', '--quiet', '--initial-branch=main');
  await git('add', '.');
  await git('commit', '--quiet', '-m', 'sample');
  return dir;
}
