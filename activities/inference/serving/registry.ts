/**
 * What serving and rollouts need of the model registry (common/models.ts) and the blob store: a version's bytes and
 * settings, its status, the active version, and status moves. One small port, so the host and the rollout
 * activities name exactly what they use.
 */
import { buffer } from 'node:stream/consumers';
import { blobStoreOf } from '../../../common/blob-store/index.js';
import type { Db } from '../../../common/db.js';
import { activeVersion, getModelVersion, setVersionStatus, type VersionStatus } from '../../../common/models.js';
import type { ArtifactSource } from './host.js';

export interface ModelRegistryPort {
  status(tenantId: string, model: string, version: string): Promise<string | undefined>;
  activeVersion(tenantId: string, model: string): Promise<string | undefined>;
  setStatus(
    tenantId: string,
    model: string,
    version: string,
    to: VersionStatus,
    evidence: Record<string, unknown>,
  ): Promise<void>;
}

export function registryPort(db: Db, actor = 'workflow:canaryRollout'): ModelRegistryPort {
  return {
    async status(tenantId, model, version) {
      return (await getModelVersion(db, tenantId, model, version))?.status;
    },
    async activeVersion(tenantId, model) {
      return (await activeVersion(db, tenantId, model))?.version;
    },
    async setStatus(tenantId, model, version, to, evidence) {
      await setVersionStatus(db, tenantId, model, version, { to, evidence, actor });
    },
  };
}

/** A version's ONNX bytes from the blob store, with its session and batching settings. */
export function registryArtifacts(db: Db): ArtifactSource {
  return async (tenantId, model, version) => {
    const v = await getModelVersion(db, tenantId, model, version);
    if (!v) throw new Error(`no version ${version} of ${model}`);
    const bytes = await buffer(await blobStoreOf(db).get(tenantId, v.artifact.sha256));
    return { bytes: new Uint8Array(bytes), session: v.settings.session, serving: v.settings.serving };
  };
}
