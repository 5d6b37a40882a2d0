/**
 * Replays every recorded history (test/replay/histories, from real runs; see record.ts) against today's workflow
 * code, so a change that breaks determinism fails CI. All failures are reported together.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import proto from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, Worker } from '@temporalio/worker';
import { describe, expect, inject, it } from 'vitest';
import { PROJECT_ROOT } from '../../common/config.js';

const HISTORIES = path.join(PROJECT_ROOT, 'test', 'replay', 'histories');

async function loadHistories(): Promise<{ workflowId: string; history: proto.temporal.api.history.v1.History }[]> {
  const files = (await readdir(HISTORIES)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(
    files.map(async (file) => ({
      workflowId: file.replace(/\.json$/, ''),
      history: proto.temporal.api.history.v1.History.fromObject(
        JSON.parse(await readFile(path.join(HISTORIES, file), 'utf8')) as Record<string, unknown>,
      ),
    })),
  );
}

describe('replay of recorded histories', () => {
  it('when every recorded history is replayed against the current workflows, then none fails', async () => {
    const histories = await loadHistories();
    const types = new Set(
      histories.map((h) => h.history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name),
    );
    expect(types).toEqual(
      new Set([
        'agentTaskWorkflow',
        'councilDeliberationWorkflow',
        'executionWorkflow',
        'federationCampaignWorkflow',
        'federatedRoundWorkflow',
      ]),
    );
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: { codePath: inject('workflowBundlePath') } },
      histories,
    )) {
      if (result.error) failures.push(`${result.workflowId}: ${String(result.error)}`);
    }
    expect(failures).toEqual([]);
  });

  it('when the workflow code changes its commands without a patch, then replay reports a determinism violation', async () => {
    const histories = (await loadHistories()).filter(
      (h) => h.history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name === 'agentTaskWorkflow',
    );
    expect(histories.length).toBeGreaterThanOrEqual(2);
    const { code } = await bundleWorkflowCode({
      workflowsPath: path.join(PROJECT_ROOT, 'test', 'replay', 'nondeterministic', 'index.ts'),
      logger: new DefaultLogger('ERROR'),
    });
    const errors: string[] = [];
    for await (const result of Worker.runReplayHistories({ workflowBundle: { code } }, histories)) {
      errors.push(result.error ? `${result.error.name}: ${result.error.message}` : 'no error');
    }
    expect(errors).toHaveLength(histories.length);
    for (const e of errors) expect(e).toMatch(/DeterminismViolationError|Nondeterminism/i);
  });
});
