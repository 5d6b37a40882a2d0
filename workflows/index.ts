/** The one entry the orchestration worker loads: every workflow type, by explicit re-export. */
export { agentTaskWorkflow } from './task/agent-task.workflow.js';
export { councilDeliberationWorkflow } from './council/council-deliberation.workflow.js';
export { executionWorkflow } from './execution/execution.workflow.js';
export { systemCheckWorkflow } from './system/system-check.workflow.js';
export { auditCheckpointWorkflow } from './audit/audit-checkpoint.workflow.js';
export { toolDiscoveryWorkflow } from './tools/tool-discovery.workflow.js';
export { blobRetentionWorkflow } from './system/blob-retention.workflow.js';
export { canaryRolloutWorkflow } from './models/canary-rollout.workflow.js';
export { runtimeTuningWorkflow } from './tuning/runtime-tuning.workflow.js';
export { modelValidationWorkflow } from './models/model-validation.workflow.js';
export { federatedRoundWorkflow, federationTrainingBatchWorkflow } from './federation/round.workflow.js';
export { federationCampaignWorkflow } from './federation/campaign.workflow.js';
export { federationScheduledRoundWorkflow } from './federation/scheduled-round.workflow.js';
