/**
 * The tuning activities of the inference pool (agency-inference), for workflows/tuning/runtime-tuning.workflow.ts:
 *
 *   loadTuningTarget({ tenantId, model, version })  the version's settings as the baseline candidate (M1's registry)
 *   suggestTrial({ space, history, strategy, … })   the optimiser's next point (optimizer.ts; pure, CPU for ms)
 *   runTuningTrial(TrialInput)                       one measured candidate (trial.ts)
 *   recordTunedVersion({ …, candidate, figures })   the tuned settings as a new version of the same ONNX artifact
 *   readHostState()                                  this host's load and temperature (activities/scheduling/)
 *
 * The optimiser runs as an activity rather than in the workflow: fitting the Gaussian process takes tens to hundreds
 * of milliseconds of CPU, which a workflow task should not, and its suggestion lands in the history for replay.
 */
import type { Db } from '../../../common/db.js';
import { getModelVersion, registerModelVersion } from '../../../common/models.js';
import {
  type Candidate,
  CandidateSchema,
  DEFAULT_SERVING,
  type Figures,
} from '../../../workflows/tuning/definitions.js';
import type { SearchSpace } from '../../../workflows/tuning/space.js';
import { ApplicationFailure } from '@temporalio/activity';
import { createSchedulingActivities, type HostSource } from '../../scheduling/host-state.js';
import { registryArtifacts } from '../serving/registry.js';
import type { GpHyper } from './gp.js';
import { type Observation, type Strategy, suggest, type Suggestion } from './optimizer.js';
import { createTrialActivities, type TrialSlots } from './trial.js';
import type { ArtifactSource } from '../serving/host.js';

export interface TuningDeps {
  db: Db;
  artifacts?: ArtifactSource;
  slots?: TrialSlots;
  hostSource?: HostSource;
}

export interface SuggestInput {
  space: SearchSpace;
  history: Observation[];
  strategy: Strategy;
  seed: number;
  warm?: GpHyper;
}

export function createTuningActivities(deps: TuningDeps) {
  return {
    ...createTrialActivities({ artifacts: deps.artifacts ?? registryArtifacts(deps.db), slots: deps.slots }),
    ...createSchedulingActivities({ source: deps.hostSource }),

    async loadTuningTarget(input: { tenantId: string; model: string; version: string }): Promise<{
      baseline: Candidate;
      status: string;
    }> {
      const v = await getModelVersion(deps.db, input.tenantId, input.model, input.version);
      if (!v) throw ApplicationFailure.nonRetryable(`no version ${input.version} of model ${input.model}`, 'NotFound');
      if (!['validated', 'canary', 'active'].includes(v.status))
        throw ApplicationFailure.nonRetryable(
          `version ${input.version} of ${input.model} is ${v.status}: only validated, canary or active versions are tuned`,
          'NotTunable',
        );
      return {
        baseline: CandidateSchema.parse({
          session: v.settings.session ?? {},
          serving: v.settings.serving ?? DEFAULT_SERVING,
        }),
        status: v.status,
      };
    },

    suggestTrial(input: SuggestInput): Promise<Suggestion> {
      return Promise.resolve().then(() =>
        suggest(input.space, input.history, input.strategy, { seed: input.seed, warm: input.warm }),
      );
    },

    /**
     * The tuned settings as a new version (next patch) of the same artifact. Idempotent: the registry finds a retried
     * registration by artifact and provenance (this workflow's id), so a retry returns the same version.
     */
    async recordTunedVersion(input: {
      tenantId: string;
      model: string;
      version: string;
      candidate: Candidate;
      figures: Figures;
      baselineFigures?: Figures;
      workflowId: string;
      requestedBy: string;
    }): Promise<{ version: string; status: string }> {
      const source = await getModelVersion(deps.db, input.tenantId, input.model, input.version);
      if (!source) throw ApplicationFailure.nonRetryable(`no version ${input.version} of ${input.model}`, 'NotFound');
      const metrics: Record<string, number> = {
        'tuning.throughput_rows_per_s': input.figures.throughput,
        'tuning.p95_ms': input.figures.p95Ms,
      };
      if (input.baselineFigures) {
        metrics['tuning.throughput_ratio'] = input.figures.throughput / input.baselineFigures.throughput;
        metrics['tuning.p95_ratio'] = input.figures.p95Ms / input.baselineFigures.p95Ms;
      }
      const v = await registerModelVersion(deps.db, {
        tenantId: input.tenantId,
        name: input.model,
        artifact: source.artifact,
        signature: source.signature ?? undefined,
        provenance: {
          by: { kind: 'workflow', workflowId: input.workflowId, workflowType: 'runtimeTuningWorkflow' },
          data: { tunedFrom: input.version },
        },
        metrics,
        settings: input.candidate,
        createdBy: input.requestedBy,
      });
      return { version: v.version, status: v.status };
    },
  };
}

export type TuningActivities = ReturnType<typeof createTuningActivities>;
