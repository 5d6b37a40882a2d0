/** The one entry the orchestration worker loads: every workflow type, by explicit re-export. */
export { agentTaskWorkflow } from './task/agent-task.workflow.js';
export { systemCheckWorkflow } from './system/system-check.workflow.js';
