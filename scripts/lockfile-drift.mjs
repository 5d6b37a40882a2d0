// The decision rule of scripts/ensure-deps.mjs, as pure functions over parsed JSON (plain JS: it runs before any
// dependency is installed). Tested in test/unit/lockfile-drift.test.ts with synthetic lockfile pairs.
//
// A registry's contents shift: it may start or stop serving other platforms' optional binaries (@swc/core-darwin-arm64,
// @unrs/resolver-binding-*). npm then records more or fewer optional entries than the committed lockfile has, and
// `npm ci` calls the lockfile out of sync. That drift is harmless. A real mismatch between package.json and the
// lockfile (a changed range, a missing or extra direct dependency, a changed version of a required package) is not.

const SECTIONS = ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies'];

/** Differences between package.json's declared dependencies and the lockfile's root entry, one line each. */
export function directMismatches(pkg, lock) {
  const root = lock?.packages?.[''] ?? {};
  const problems = [];
  for (const section of SECTIONS) {
    const wanted = pkg[section] ?? {};
    const locked = root[section] ?? {};
    for (const [name, range] of Object.entries(wanted)) {
      if (!(name in locked)) problems.push(`${name}: in package.json ${section} but not in package-lock.json`);
      else if (locked[name] !== range)
        problems.push(`${name}: package.json wants ${range}, package-lock.json has ${locked[name]}`);
      else if (
        section !== 'optionalDependencies' &&
        section !== 'peerDependencies' &&
        !lock.packages[`node_modules/${name}`]
      )
        problems.push(`${name}: no node_modules/${name} entry in package-lock.json`);
    }
    for (const name of Object.keys(locked)) {
      if (!(name in wanted)) problems.push(`${name}: in package-lock.json ${section} but not in package.json`);
    }
  }
  return problems;
}

const nameOf = (key) => key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
const label = (key, entry) => `${nameOf(key)}@${entry.version ?? '?'}`;

/**
 * Classifies how `npm install` rewrote a lockfile (`before` is the committed one, `after` npm's).
 * Returns { kind: 'same' | 'optional-only' | 'mismatch', gained, lost, changed }: gained and lost list optional
 * packages the registry now serves or no longer serves; changed lists everything else that moved.
 */
export function classifyLockChange(before, after) {
  const a = before?.packages ?? {};
  const b = after?.packages ?? {};
  const gained = [];
  const lost = [];
  const changed = [];
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const was = a[key];
    const now = b[key];
    if (key === '') {
      for (const section of SECTIONS) {
        if (JSON.stringify(was?.[section] ?? {}) !== JSON.stringify(now?.[section] ?? {}))
          changed.push(`the root's ${section}`);
      }
    } else if (!was) (now.optional ? gained : changed).push(label(key, now));
    else if (!now) (was.optional ? lost : changed).push(label(key, was));
    else if (was.version !== now.version) changed.push(`${nameOf(key)}: ${was.version} -> ${now.version}`);
  }
  const kind = changed.length ? 'mismatch' : gained.length || lost.length ? 'optional-only' : 'same';
  return { kind, gained, lost, changed };
}

/** The one line ensure-deps prints after an optional-only drift. */
export function describeOptionalDrift({ gained, lost }) {
  const some = (list) => `${list.length} optional package${list.length === 1 ? '' : 's'} (e.g. ${list[0]})`;
  const parts = [
    gained.length ? `serves ${some(gained)} that package-lock.json lacks` : '',
    lost.length ? `no longer serves ${some(lost)} that package-lock.json records` : '',
  ];
  return `the registry ${parts.filter(Boolean).join(' and ')}: installed with npm install; the lockfile is left as committed`;
}
