/** The project's custom search attributes: runs can be found and filtered by them in the Web UI. Workflow-safe. */
import { defineSearchAttributeKey } from '@temporalio/common';

export const TaskStatusKey = defineSearchAttributeKey('AgencyTaskStatus', 'KEYWORD');
export const RiskTierKey = defineSearchAttributeKey('AgencyRiskTier', 'INT');
export const TenantKey = defineSearchAttributeKey('AgencyTenant', 'KEYWORD');
export const ModelKey = defineSearchAttributeKey('AgencyModel', 'KEYWORD');
export const RoundKey = defineSearchAttributeKey('AgencyRound', 'INT');

/** Name → CLI type, for registration with `temporal server start-dev --search-attribute` or the operator API. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword' | 'Int'> = {
  [TaskStatusKey.name]: 'Keyword',
  [RiskTierKey.name]: 'Int',
  [TenantKey.name]: 'Keyword',
  [ModelKey.name]: 'Keyword',
  [RoundKey.name]: 'Int',
};
