/**
 * Tenant isolation for the workflows the API reads and drives (tasks, council sessions, reviews): a workflow belongs
 * to the tenant named in its memo. One that does not exist, is of another type or belongs to another tenant is the
 * same 404, so a caller learns nothing about other tenants' ids.
 */
import { WorkflowNotFoundError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import { notFound } from './errors.js';
import type { Principal } from './principal.js';

/** The workflow's description, if it is a `type` workflow of the caller's tenant; else 404 "no <what>". */
export async function ownedWorkflow(
  temporal: Client,
  principal: Pick<Principal, 'tenantId'>,
  workflowId: string,
  { type, what }: { type: string; what: string },
): Promise<WorkflowExecutionDescription> {
  try {
    const description = await temporal.workflow.getHandle(workflowId).describe();
    if (description.type === type && description.memo?.tenantId === principal.tenantId) return description;
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  throw notFound(`no ${what}`);
}
