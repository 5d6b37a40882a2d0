/**
 * toolDiscovery — connects to one registered MCP server, lists its tools (tools/list) and stores them in the
 * registry, or marks the server unhealthy with the error. Started by the API (POST /api/v1/tools/servers and
 * .../:id/refresh), which waits for its result: the API itself never starts or talks to a tool server.
 *
 * Activities: discoverToolServer on agency-execution (where the tool servers run).
 */
import type { ExecutionActivities } from '../../activities/execution/index.js';
import { proxyOn } from '../proxy.js';

export interface ToolDiscoveryInput {
  tenantId: string;
  serverId: string;
}

export async function toolDiscoveryWorkflow(input: ToolDiscoveryInput) {
  const { discoverToolServer } = proxyOn<ExecutionActivities>('execution', {
    // Discovery records an unhealthy server instead of failing, so a retry only covers a lost worker.
    startToCloseTimeout: '2 minutes',
    retry: { maximumAttempts: 3, nonRetryableErrorTypes: ['ToolUnavailable'] },
  });
  return discoverToolServer(input.tenantId, input.serverId);
}

export function toolDiscoveryWorkflowId(serverId: string, requestId: string): string {
  return `tool-discovery-${serverId}-${requestId}`;
}
