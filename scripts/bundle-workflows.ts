/**
 * Bundles the workflow code once (as production and the test suite run it):
 *   tsx scripts/bundle-workflows.ts [out-file]     default dist/workflow-bundle.js
 * Then start workers with WORKFLOW_BUNDLE_PATH=<out-file>.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { PROJECT_ROOT } from '../common/config.js';

export async function bundleWorkflows(outFile: string): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: path.join(PROJECT_ROOT, 'workflows', 'index.ts'),
    logger: new DefaultLogger('ERROR'),
  });
  await mkdir(path.dirname(outFile), { recursive: true });
  await writeFile(outFile, code);
  return outFile;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = path.resolve(process.argv[2] ?? path.join(PROJECT_ROOT, 'dist', 'workflow-bundle.js'));
  await bundleWorkflows(out);
  process.stdout.write(`${out}\n`);
}
