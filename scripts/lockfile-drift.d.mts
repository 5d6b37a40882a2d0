// Types for scripts/lockfile-drift.mjs (plain JS, because it runs before dependencies are installed).
export interface Lockfile {
  packages?: Record<string, { version?: string; optional?: boolean; [field: string]: unknown }>;
}
export interface PackageJson {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}
export interface LockChange {
  kind: 'same' | 'optional-only' | 'mismatch';
  gained: string[];
  lost: string[];
  changed: string[];
}
export function directMismatches(pkg: PackageJson, lock: Lockfile): string[];
export function classifyLockChange(before: Lockfile, after: Lockfile): LockChange;
export function describeOptionalDrift(change: Pick<LockChange, 'gained' | 'lost'>): string;
