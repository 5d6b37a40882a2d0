/**
 * Records histories of real agentTask runs into test/replay/histories/, for the replay test.
 *   npm run test:record-histories -- <tag> [scenario …]
 * The tag names the new histories (task-record-<tag>-completed…), so recording adds histories next to the ones
 * recorded before a change (which must go on replaying); a file that exists already is never overwritten.
 * Starts its own headless Temporal dev server and a scratch database, runs the workers in-process, carries each
 * scenario to its end, and writes the history as JSON. Re-record after an intended, patched workflow change.
 */
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { queueFor } from '../../temporal/task-queues.js';
import { createPoolWorkers } from '../../workers/pools.js';
import { agentTaskWorkflow } from '../../workflows/index.js';
import {
  approveSignal,
  progressQuery,
  type AgentTaskInput,
  type PendingApproval,
} from '../../workflows/task/definitions.js';
import { sampleGitRepo } from '../helpers/sample-repo.js';
import { signedApproval } from '../helpers/tasks.js';
import { withRecordingStack, writeHistory } from './record-stack.js';

const sample = (): Promise<string> =>
  sampleGitRepo(path.join(os.tmpdir(), 'agency-record-'), 'calculator', { name: 'r', email: 'r@x' });

await withRecordingStack(
  { stateDirPrefix: 'agency-record-state-', database: 'agency_record' },
  (ctx) => createPoolWorkers(ctx, ['orchestration', 'planning', 'council', 'execution']),
  async ({ config, client }) => {
    const base = (id: string, workspace: string): AgentTaskInput => ({
      id,
      tenantId: 'default',
      correlationId: `record-${id}`,
      submittedBy: 'user:recorder',
      title: 'Recorded task',
      description: '',
      workspace,
      mode: 'auto',
      budgets: { max_steps: 100, max_tokens: 0, max_cost_usd: 0 },
    });
    const tag = process.argv[2] ? `${process.argv[2]}-` : '';
    const only = process.argv.slice(3);
    const scenarios: Record<string, AgentTaskInput> = {
      // The demo: the spec comes from the workspace's .caws/working-spec.yaml; gates pass.
      'agent-task-completed': base(`record-${tag}completed`, await sample()),
      // Gates fail: no step fixes the bug.
      'agent-task-gates-failed': {
        ...base(`record-${tag}gates-failed`, await sample()),
        spec: {
          id: 'DOC-1',
          title: 'Add a note without fixing the bug',
          risk_tier: 3,
          mode: 'doc',
          scope: { in: ['NOTES.md'], out: [] },
          acceptance: [],
          invariants: [],
          steps: [{ kind: 'write_file', path: 'NOTES.md', content: 'notes\n' }],
          gates: [{ name: 'tests', run: ['node', '--test'] }],
        },
      },
      // Strict: a person approves the plan with a decision signed as the API signs it (workflows/task/decision-proof.ts).
      'agent-task-approved': { ...base(`record-${tag}approved`, await sample()), mode: 'strict' },
    };
    for (const [name, input] of Object.entries(scenarios)) {
      if (only.length && !only.includes(name)) continue;
      const handle = await client.workflow.start(agentTaskWorkflow, {
        args: [input],
        workflowId: `task-${input.id}`,
        taskQueue: queueFor('orchestration', config.TASK_QUEUE_PREFIX),
        memo: { tenantId: 'default' },
      });
      if (input.mode === 'strict') {
        let pending: PendingApproval | undefined;
        while (!(pending = (await handle.query(progressQuery)).pendingApproval)) await sleep(200);
        await handle.signal(approveSignal, await signedApproval(config, handle.workflowId, pending.hash));
      }
      const result = await handle.result();
      const history = await handle.fetchHistory();
      // The file is named by the workflow id: replay derives child workflow ids from it.
      await writeHistory(handle.workflowId, history);
      // Children too (council sessions, execution): their histories must replay as well.
      const children = (history.events ?? []).flatMap((e) => {
        const id = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId;
        return id ? [id] : [];
      });
      for (const child of children) {
        const childHistory = await client.workflow.getHandle(child).fetchHistory();
        await writeHistory(child, childHistory);
      }
      process.stdout.write(
        `${name}: ${result.status} (${history.events?.length} events, ${children.length} children)\n`,
      );
    }
  },
);
