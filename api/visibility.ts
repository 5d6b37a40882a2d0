/**
 * Pages of one tenant's workflows from Temporal visibility, for the list routes (tasks, council sessions). The list
 * query is written here and nowhere else, and Temporal's page token travels as the API's opaque cursor (base64url).
 */
import type { Client } from '@temporalio/client';
import type { temporal as proto } from '@temporalio/proto';
import type { Config } from '../common/config.js';
import { TenantKey } from '../temporal/search-attributes.js';
import { hasGrpcCode } from './dependencies.js';
import { HttpProblem } from './errors.js';

export type WorkflowExecutionInfo = proto.api.workflow.v1.IWorkflowExecutionInfo;

const GRPC_INVALID_ARGUMENT = 3;
/** Values reach the query already validated (ids, enums, integers); anything else is a programming error. */
const PLAIN = /^[A-Za-z0-9_.-]*$/;

function literal(value: string | number): string {
  if (typeof value === 'number' && Number.isInteger(value)) return String(value);
  if (typeof value === 'string' && PLAIN.test(value)) return `'${value}'`;
  throw new Error(`refusing to put ${JSON.stringify(value)} in a visibility query`);
}

/** `WorkflowType = '<type>' AND <tenant> = '<tenantId>'`, then `AND <attribute> = <value>` for each defined filter. */
export function tenantWorkflowsQuery(
  type: string,
  tenantId: string,
  filters: Record<string, string | number | undefined> = {},
): string {
  const clauses: [string, string | number | undefined][] = [
    ['WorkflowType', type],
    [TenantKey.name, tenantId],
    ...Object.entries(filters),
  ];
  return clauses
    .filter((c): c is [string, string | number] => c[1] !== undefined)
    .map(([name, value]) => `${name} = ${literal(value)}`)
    .join(' AND ');
}

const invalidCursor = (): HttpProblem => {
  const message = 'not the nextCursor of a previous page of this list';
  return new HttpProblem(400, 'Bad Request', `the request query is invalid: cursor: ${message}`, {
    issues: [{ path: 'cursor', code: 'invalid_cursor', message }],
  });
};

/**
 * Temporal's page token from the API's cursor. Temporal's visibility stores (SQL and Elasticsearch) write their page
 * tokens as JSON objects; anything else was not given out by the API, and Temporal would answer it with an internal
 * error, after the client's retries, instead of a refusal.
 */
function pageToken(cursor: string): Uint8Array {
  const token = Buffer.from(cursor, 'base64url');
  let value: unknown;
  try {
    value = JSON.parse(token.toString('utf8'));
  } catch {
    throw invalidCursor();
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidCursor();
  return token;
}

/** One page of the query's workflows, newest first; a cursor that is not a page token is a 400. */
export async function listWorkflowPage(
  { temporal, config }: { temporal: Client; config: Pick<Config, 'TEMPORAL_NAMESPACE'> },
  query: string,
  { limit, cursor }: { limit: number; cursor?: string },
): Promise<{ executions: WorkflowExecutionInfo[]; nextCursor: string | null }> {
  const nextPageToken = cursor ? pageToken(cursor) : undefined;
  try {
    const page = await temporal.workflowService.listWorkflowExecutions({
      namespace: config.TEMPORAL_NAMESPACE,
      pageSize: limit,
      nextPageToken,
      query,
    });
    return {
      executions: page.executions,
      nextCursor: page.nextPageToken?.length ? Buffer.from(page.nextPageToken).toString('base64url') : null,
    };
  } catch (err) {
    if (cursor && hasGrpcCode(err, GRPC_INVALID_ARGUMENT)) throw invalidCursor();
    throw err;
  }
}
