/**
 * One turn of the agent loop: the model sees the task, the spec, what failed, the last tool results and the registered
 * tools, and picks exactly one next action (a workspace edit, a command, or a call of a registered MCP tool) or says it
 * is done. The execution pool carries it out.
 */
import { SpecStepSchema, type SpecStep, type WorkingSpec } from '../../workflows/task/spec.js';
import type { AgentTurn } from '../../workflows/execution/definitions.js';
import type { AgentToolInfo } from '../../workflows/execution/tools.js';
import { ModelOutputError } from './model-errors.js';
import type { LanguageModel, ModelUsage, ToolSpec } from './providers.js';

export interface AgentContext {
  title: string;
  description: string;
  spec: WorkingSpec;
  /** What is wrong now: failing gates, council remediation. */
  goal: string[];
  history: AgentTurn[];
  /** Registered MCP tools the agent may call with call_tool. */
  tools?: AgentToolInfo[];
}

/** The workspace tools the other functions already cover; not listed again for call_tool. */
const COVERED = new Set(['workspace/write_file', 'workspace/apply_patch', 'workspace/run_command']);

export type AgentAction =
  | { kind: 'step'; step: SpecStep; usage: ModelUsage; costUsd: number }
  | { kind: 'done'; summary: string; usage: ModelUsage; costUsd: number };

const path = { type: 'string', description: 'path relative to the repository root, without ".."' };
export const AGENT_TOOLS: ToolSpec[] = [
  {
    name: 'write_file',
    description: 'Create or overwrite a file with the given content.',
    parameters: { type: 'object', required: ['path', 'content'], properties: { path, content: { type: 'string' } } },
  },
  {
    name: 'replace',
    description: 'Replace the one occurrence of `find` in a file with `replace`.',
    parameters: {
      type: 'object',
      required: ['path', 'find', 'replace'],
      properties: { path, find: { type: 'string' }, replace: { type: 'string' } },
    },
  },
  {
    name: 'run_command',
    description: 'Run a program with arguments (no shell) in the repository.',
    parameters: {
      type: 'object',
      required: ['run'],
      properties: { run: { type: 'array', items: { type: 'string' } } },
    },
  },
  {
    name: 'call_tool',
    description:
      'Call one of the registered tools listed under TOOLS, by name (and server when two share a name), with arguments matching its input schema.',
    parameters: {
      type: 'object',
      required: ['tool', 'arguments'],
      properties: { tool: { type: 'string' }, server: { type: 'string' }, arguments: { type: 'object' } },
    },
  },
  {
    name: 'finish',
    description: 'Stop: the task is done, or nothing more can be done.',
    parameters: { type: 'object', required: ['summary'], properties: { summary: { type: 'string' } } },
  },
];

const SYSTEM = [
  'You are the execution agent of a software-change platform. Work inside the repository only.',
  'Call exactly one tool per turn. Keep edits within the spec scope. Call finish when the acceptance criteria are met.',
].join(' ');

export async function nextAgentActionWithModel(model: LanguageModel, ctx: AgentContext): Promise<AgentAction> {
  const user = [
    `TASK: ${ctx.title}\n${ctx.description}`,
    `SPEC (scope, acceptance, gates):\n${JSON.stringify({ scope: ctx.spec.scope, acceptance: ctx.spec.acceptance, gates: ctx.spec.gates })}`,
    ctx.goal.length ? `STILL WRONG:\n${ctx.goal.join('\n')}` : '',
    ctx.history.length
      ? `PREVIOUS ACTIONS:\n${ctx.history.map((h) => `${h.ok ? 'ok' : 'FAILED'} ${h.action} -> ${h.detail}`).join('\n')}`
      : 'No actions yet.',
    ctx.tools?.length
      ? `TOOLS (call_tool; "needs approval" waits for a person):\n${ctx.tools
          .filter((t) => !COVERED.has(`${t.server}/${t.tool}`))
          .map(
            (t) =>
              `${t.server}/${t.tool} [${t.capabilities.join(', ')}] ${t.level}${t.needsApproval ? ', needs approval' : ''}: ${t.description}`,
          )
          .join('\n')}`
      : '',
  ]
    .filter(Boolean)
    .join('\n\n');
  const response = await model.complete({
    system: SYSTEM,
    messages: [{ role: 'user', content: user }],
    tools: AGENT_TOOLS,
    toolChoice: 'required',
    maxTokens: 4096,
  });
  const call = response.toolCalls[0];
  const metered = { usage: response.usage, costUsd: response.costUsd };
  if (!call) throw new ModelOutputError('the model called no tool', { ...metered, raw: response.text });
  const args = (call.arguments ?? {}) as Record<string, unknown>;
  if (call.name === 'finish')
    return { kind: 'done', summary: typeof args.summary === 'string' ? args.summary : '', ...metered };
  const candidate =
    call.name === 'write_file'
      ? { kind: 'write_file', path: args.path, content: args.content }
      : call.name === 'replace'
        ? { kind: 'replace', path: args.path, find: args.find, replace: args.replace }
        : call.name === 'run_command'
          ? { kind: 'command', run: args.run }
          : call.name === 'call_tool'
            ? toolStep(ctx, args)
            : undefined;
  if (call.name === 'call_tool' && !candidate) {
    throw new ModelOutputError(`the model called call_tool for ${JSON.stringify(args.tool)}, which is not listed`, {
      ...metered,
      raw: JSON.stringify(call),
    });
  }
  const parsed = SpecStepSchema.safeParse(candidate);
  if (!parsed.success) {
    throw new ModelOutputError(
      `the model's ${call.name} call is not a valid action: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      { ...metered, raw: JSON.stringify(call) },
    );
  }
  return { kind: 'step', step: parsed.data, ...metered };
}

/** A call_tool call as a `tool` step: the named tool's capabilities come from the catalog the model was shown. */
function toolStep(ctx: AgentContext, args: Record<string, unknown>): Record<string, unknown> | undefined {
  const known = ctx.tools?.find((t) => t.tool === args.tool && (args.server === undefined || t.server === args.server));
  if (!known) return undefined;
  return {
    kind: 'tool',
    capabilities: known.capabilities,
    tool: known.tool,
    server: known.server,
    arguments: args.arguments,
  };
}
