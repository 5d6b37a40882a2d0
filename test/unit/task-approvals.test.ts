import { describe, expect, it } from 'vitest';
import type { ToolPlan } from '../../workflows/execution/tools.js';
import { planApprovalReasons } from '../../workflows/task/approvals.js';

const NO_TOOLS: Pick<ToolPlan, 'conflicts' | 'approval'> = { conflicts: [] };

describe('planApprovalReasons', () => {
  it('when an auto-mode task of tier 2 or 3 has no escalation, conflict or privileged call, then nobody is asked', () => {
    expect(planApprovalReasons({ mode: 'auto', tier: 2, toolPlan: NO_TOOLS })).toEqual([]);
    expect(planApprovalReasons({ mode: 'auto', tier: 3, toolPlan: NO_TOOLS })).toEqual([]);
  });

  it('when every reason applies, then each is named, in the order escalation, mode, tier, conflicts, tool calls', () => {
    expect(
      planApprovalReasons({
        councilEscalation: 'split two against two',
        mode: 'strict',
        tier: 1,
        toolPlan: {
          conflicts: [
            {
              kind: 'edit_overlap',
              steps: [0, 1],
              path: 'src/a.ts',
              evidence: 'steps 1 and 2 edit lines 3-5',
              resolution: 'escalated',
              detail: 'no merge applies',
            },
            {
              kind: 'overwrite',
              steps: [2, 3],
              evidence: 'step 4 rewrites step 3',
              resolution: 'ordering',
              detail: 'kept in plan order',
            },
          ],
          approval: {
            hash: 'h'.repeat(64),
            calls: [
              { step: 0, key: 'k0', serverId: 'deploy', tool: 'release' },
              { step: 2, key: 'k2', serverId: 'db', tool: 'migrate' },
            ],
          },
        },
      }),
    ).toEqual([
      'the council could not decide: split two against two',
      'strict mode: a person approves before execution',
      'tier 1 requires manual review',
      'edit conflict: steps 1 and 2 edit lines 3-5; no merge applies',
      'privileged tool calls: step 1 deploy/release, step 3 db/migrate',
    ]);
  });

  it('when the council escalates without a reason, then the escalation still asks a person', () => {
    expect(planApprovalReasons({ councilEscalation: '', mode: 'auto', tier: 3, toolPlan: NO_TOOLS })).toEqual([
      'the council could not decide: ',
    ]);
  });
});
