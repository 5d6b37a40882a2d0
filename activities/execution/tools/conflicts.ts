/**
 * Edit conflicts between a plan's steps, found before anything runs. Two `replace` steps whose texts overlap in the
 * same file (as the file is at the base commit) would each expect text the other changes: a clean three-way merge
 * (`git merge-file`) folds them into one edit; otherwise the conflict is escalated to a person. Two whole-file writes
 * of the same path are resolved by ordering (the later one stands), and recorded.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ToolConflict } from '../../../workflows/execution/tools.js';
import type { SpecStep } from '../../../workflows/task/spec.js';

const run = promisify(execFile);

function range(content: string, find: string): [number, number] | undefined {
  const at = content.indexOf(find);
  if (at < 0 || content.indexOf(find, at + 1) >= 0) return undefined;
  return [at, at + find.length];
}

/** `git merge-file` on three texts: the merged text when the merge is clean. */
async function mergeThreeWay(base: string, ours: string, theirs: string): Promise<string | undefined> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'agency-merge-'));
  try {
    await Promise.all([
      writeFile(path.join(dir, 'base'), base),
      writeFile(path.join(dir, 'ours'), ours),
      writeFile(path.join(dir, 'theirs'), theirs),
    ]);
    const { stdout } = await run('git', ['merge-file', '-p', 'ours', 'base', 'theirs'], {
      cwd: dir,
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  } catch {
    return undefined; // exit code > 0: that many conflicts
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Finds and resolves conflicts. `readBase(path)` gives a file's content at the base commit (undefined when absent).
 * Returns the steps to run (a merged pair becomes one `write_file`) and every conflict with its resolution.
 */
export async function resolveEditConflicts(
  steps: SpecStep[],
  readBase: (file: string) => Promise<string | undefined>,
): Promise<{ steps: SpecStep[]; conflicts: ToolConflict[] }> {
  const conflicts: ToolConflict[] = [];
  const out: (SpecStep | undefined)[] = [...steps];
  const writes = new Map<string, number>();
  steps.forEach((s, i) => {
    if (s.kind !== 'write_file') return;
    const earlier = writes.get(s.path);
    if (earlier !== undefined)
      conflicts.push({
        kind: 'overwrite',
        steps: [earlier, i],
        path: s.path,
        evidence: `steps ${earlier + 1} and ${i + 1} both write the whole of ${s.path}`,
        resolution: 'ordering',
        detail: `applied in order: step ${i + 1}'s content stands`,
      });
    writes.set(s.path, i);
  });

  const replaces = steps.flatMap((s, i) => (s.kind === 'replace' ? [{ s, i }] : []));
  for (let a = 0; a < replaces.length; a++) {
    for (let b = a + 1; b < replaces.length; b++) {
      const x = replaces[a]!;
      const y = replaces[b]!;
      if (x.s.path !== y.s.path || !out[x.i] || !out[y.i]) continue;
      // A step between them that rewrites the file makes the later one a deliberate edit of the new content.
      if (steps.slice(x.i + 1, y.i).some((s) => s.kind === 'write_file' && s.path === x.s.path)) continue;
      const base = await readBase(x.s.path);
      if (base === undefined) continue;
      const rx = range(base, x.s.find);
      const ry = range(base, y.s.find);
      if (!rx || !ry || rx[1] <= ry[0] || ry[1] <= rx[0]) continue; // not both in the base, or disjoint
      const evidence = `steps ${x.i + 1} and ${y.i + 1} edit ${x.s.path} at overlapping ranges ${rx[0]}–${rx[1]} and ${ry[0]}–${ry[1]} of the base file`;
      const ours = base.replace(x.s.find, () => x.s.replace);
      const theirs = base.replace(y.s.find, () => y.s.replace);
      const merged = await mergeThreeWay(base, ours, theirs);
      if (merged !== undefined) {
        out[x.i] = { kind: 'write_file', path: x.s.path, content: merged, ...(x.s.id ? { id: x.s.id } : {}) };
        out[y.i] = undefined;
        conflicts.push({
          kind: 'edit_overlap',
          steps: [x.i, y.i],
          path: x.s.path,
          evidence,
          resolution: 'three_way_merge',
          detail: `merged cleanly into one write of ${x.s.path} at step ${x.i + 1}`,
        });
      } else {
        conflicts.push({
          kind: 'edit_overlap',
          steps: [x.i, y.i],
          path: x.s.path,
          evidence,
          resolution: 'escalated',
          detail: 'the edits do not merge cleanly; a person decides (applied in order if approved)',
        });
      }
    }
  }
  return { steps: out.filter((s): s is SpecStep => s !== undefined), conflicts };
}
