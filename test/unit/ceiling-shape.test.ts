// The benchmark's ceiling follows the pipeline: its shape is read from a real task's recorded histories.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type proto from '@temporalio/proto';
import { describe, expect, it } from 'vitest';
import { countShape, shapeOf } from '../../bench/ceiling.js';
import { PROJECT_ROOT } from '../../common/config.js';

type History = proto.temporal.api.history.v1.IHistory;
const read = async (name: string): Promise<History> =>
  JSON.parse(await readFile(path.join(PROJECT_ROOT, 'test', 'replay', 'histories', `${name}.json`), 'utf8')) as History;

/** The recorded task's children, by type, in the order the task started them. */
async function shapeOfRecorded() {
  const files: Record<string, string[]> = {
    councilDeliberationWorkflow: ['council-plan-1', 'council-result-2'],
    executionWorkflow: ['execution-1'],
  };
  const asked: string[] = [];
  const shape = await shapeOf(await read('task-record-completed'), (_id, type) => {
    asked.push(type);
    return read(`task-record-completed-${files[type]!.shift()!}`);
  });
  return { shape, asked };
}

describe('the ceiling shape of a recorded task', () => {
  it('follows the task and its three children in order, each activity on its pool', async () => {
    const { shape, asked } = await shapeOfRecorded();
    expect(shape.type).toBe('agentTaskWorkflow');
    expect(asked).toEqual(['councilDeliberationWorkflow', 'executionWorkflow', 'councilDeliberationWorkflow']);
    const top = shape.groups.flat();
    expect(top.slice(0, 4)).toEqual([
      { activity: 'recordTaskEvent', pool: 'planning' },
      { activity: 'planTask', pool: 'planning' },
      { activity: 'assessTaskRisk', pool: 'planning' },
      { activity: 'resolveToolPlan', pool: 'execution' },
    ]);
    expect(top.map((i) => ('child' in i ? i.child.type : null)).filter(Boolean)).toEqual([
      'councilDeliberationWorkflow',
      'executionWorkflow',
      'councilDeliberationWorkflow',
    ]);
    expect(top.at(-1)).toEqual({ activity: 'cleanupWorkspace', pool: 'execution' });
  });

  it('keeps what ran in parallel together: the four judges of a council round are one group', async () => {
    const { shape } = await shapeOfRecorded();
    const council = shape.groups.flat().find((i) => 'child' in i && i.child.type === 'councilDeliberationWorkflow');
    const groups = council && 'child' in council ? council.child.groups : [];
    expect(groups.some((g) => g.length === 4 && g.every((i) => 'activity' in i && i.pool === 'council'))).toBe(true);
  });

  it('counts every activity of the task and its children', async () => {
    const { shape } = await shapeOfRecorded();
    const files = ['', '-council-plan-1', '-execution-1', '-council-result-2'];
    let scheduled = 0;
    for (const f of files) {
      const h = await read(`task-record-completed${f}`);
      scheduled += (h.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes).length;
    }
    const counts = countShape(shape);
    expect(counts.activities).toBe(scheduled);
    expect(counts.children).toBe(3);
  });
});
