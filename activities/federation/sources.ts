/**
 * Where a participant worker finds its local data: the data source named in its own configuration
 * (FEDERATION_PARTICIPANTS="id=source,…"), never sent to it by the platform. Two kinds:
 *
 *   mnist:?participants=10&index=3&partition=iid&seed=7[&alpha=0.5][&shards=2][&limit=800][&test_fraction=0.2]
 *       simulation: shard `index` of a seeded partition (iid | shards | dirichlet) of the MNIST training split
 *       (activities/federation/data.ts); the held-out split of the same seed and test_fraction is never in a shard.
 *       `poison=nan|shape|norm` makes a simulated participant misbehave (tests of the aggregator's checks).
 *   file:/absolute/path.json
 *       a site's own data beside its worker: {"x": [[784 pixels in 0..1], …], "y": [labels 0..9]}.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { federatedMnist, IMAGE_SIZE, type Dataset, type PartitionSpec } from './data.js';

export type Poison = 'nan' | 'shape' | 'norm';

export interface LocalData {
  data: Dataset;
  poison?: Poison;
}

export function parseParticipants(spec: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const item of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`FEDERATION_PARTICIPANTS: expected id=data-source, got ${item}`);
    const id = item.slice(0, eq);
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(id)) throw new Error(`FEDERATION_PARTICIPANTS: bad participant id ${id}`);
    out.set(id, item.slice(eq + 1));
  }
  return out;
}

const cache = new Map<string, LocalData>();

export function loadLocalData(source: string): LocalData {
  const hit = cache.get(source);
  if (hit) return hit;
  const loaded = source.startsWith('mnist:')
    ? mnistShard(source)
    : source.startsWith('file:')
      ? fileData(source)
      : undefined;
  if (!loaded) throw new Error(`unknown data source ${source}: expected mnist:?… or file:/path.json`);
  cache.set(source, loaded);
  return loaded;
}

function mnistShard(source: string): LocalData {
  const q = new URLSearchParams(source.slice(source.indexOf('?') + 1));
  const num = (name: string, fallback?: number): number => {
    const v = q.get(name);
    if (v === null) {
      if (fallback === undefined) throw new Error(`data source ${source}: missing ${name}`);
      return fallback;
    }
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`data source ${source}: ${name} is not a number`);
    return n;
  };
  const kind = q.get('partition') ?? 'iid';
  const partition: PartitionSpec =
    kind === 'iid'
      ? { kind: 'iid' }
      : kind === 'shards'
        ? { kind: 'shards', shardsPerParticipant: num('shards', 2) }
        : kind === 'dirichlet'
          ? { kind: 'dirichlet', alpha: num('alpha', 0.5) }
          : (() => {
              throw new Error(`data source ${source}: partition must be iid, shards or dirichlet`);
            })();
  const participants = num('participants');
  const index = num('index');
  if (!(index >= 0 && index < participants)) throw new Error(`data source ${source}: index out of range`);
  const limit = q.get('limit');
  const fed = federatedMnist({
    participants,
    partition,
    seed: num('seed', 1),
    testFraction: num('test_fraction', 0.2),
    ...(limit !== null ? { trainLimit: num('limit') } : {}),
  });
  const poison = q.get('poison');
  if (poison !== null && poison !== 'nan' && poison !== 'shape' && poison !== 'norm')
    throw new Error(`data source ${source}: poison must be nan, shape or norm`);
  return { data: fed.shards[index]!, ...(poison ? { poison } : {}) };
}

function fileData(source: string): LocalData {
  const file = source.replace(/^file:(\/\/)?/, '');
  if (!path.isAbsolute(file)) throw new Error(`data source ${source}: expected an absolute path`);
  const raw = JSON.parse(readFileSync(file, 'utf8')) as { x?: number[][]; y?: number[] };
  if (!Array.isArray(raw.x) || !Array.isArray(raw.y) || raw.x.length !== raw.y.length)
    throw new Error(`${file}: expected {"x": [[…784…], …], "y": [labels]} of equal length`);
  const n = raw.x.length;
  const x = new Float32Array(n * IMAGE_SIZE);
  raw.x.forEach((row, i) => {
    if (row.length !== IMAGE_SIZE) throw new Error(`${file}: row ${i} has ${row.length} values, not ${IMAGE_SIZE}`);
    x.set(row, i * IMAGE_SIZE);
  });
  return { data: { x, y: Uint8Array.from(raw.y), n } };
}
