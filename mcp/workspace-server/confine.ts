/**
 * Path confinement for the workspace tools: every path argument is checked here before any file is touched.
 *
 * Rules (each refusal names its rule):
 * - `nul-byte`, `absolute-path`, `outside-root`: the argument is a relative path that stays inside the root lexically.
 * - `symlink-escape`: after resolving symlinks (of the file, or of its nearest existing ancestor when it does not exist
 *   yet) the path is still inside the root. Writes go further and follow no symlink at all (`symlink`).
 * - `hard-link`: a regular file with more than one link is refused for reading and writing. A hard link is the same
 *   inode under another name, so a link to /etc/shadow (or to any file outside the root on the same file system) looks
 *   like an ordinary file inside the workspace; no path check can tell, only the link count can.
 * - `special-file`: only regular files and directories; no devices, FIFOs (opening one would block) or sockets.
 * - `git-dir`: nothing under .git/ is written (hooks and config there execute code on the host).
 *
 * The check-then-open race is closed after opening: files are opened with O_NOFOLLOW|O_NONBLOCK, then the open
 * descriptor is checked (fstat: same inode, regular, one link; /proc/self/fd: the real path is inside the root).
 * Writes go to a fresh temporary file (O_EXCL|O_NOFOLLOW, verified the same way) that is renamed over the target:
 * rename replaces the directory entry, never writing through a link.
 */
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, readlink, realpath, rename, rm, type FileHandle } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import path from 'node:path';

export type ConfinementRule =
  | 'invalid-path'
  | 'nul-byte'
  | 'absolute-path'
  | 'outside-root'
  | 'symlink-escape'
  | 'symlink'
  | 'hard-link'
  | 'special-file'
  | 'git-dir'
  | 'not-found'
  | 'not-a-file'
  | 'not-a-directory';

export class ConfinementError extends Error {
  override name = 'ConfinementError';
  constructor(
    readonly rule: ConfinementRule,
    message: string,
  ) {
    super(`${message} [rule: ${rule}]`);
  }
}

/** The root, realpath'd once: every later comparison is against this real path. */
export async function realRoot(root: string): Promise<string> {
  const real = await realpath(root);
  if (!(await lstat(real)).isDirectory()) throw new Error(`workspace root ${root} is not a directory`);
  return real;
}

export function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

export interface ConfinedPath {
  /** Absolute host path (lexical: root + argument). */
  abs: string;
  /** Path relative to the root, '' for the root itself; what tools report back. */
  rel: string;
}

/** Lexical checks only: type, NUL, absolute, `..` escaping the root. */
export function lexicalPath(root: string, input: unknown): ConfinedPath {
  if (typeof input !== 'string') throw new ConfinementError('invalid-path', 'path must be a string');
  if (input.includes('\0')) throw new ConfinementError('nul-byte', 'path contains a NUL byte');
  if (path.isAbsolute(input)) {
    throw new ConfinementError(
      'absolute-path',
      `path ${JSON.stringify(input)} is absolute; give a path relative to the workspace root`,
    );
  }
  const abs = path.resolve(root, input);
  if (!isInside(root, abs)) {
    throw new ConfinementError('outside-root', `path ${JSON.stringify(input)} resolves outside the workspace root`);
  }
  return { abs, rel: path.relative(root, abs) };
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** Realpath of the path, or of its nearest existing ancestor with the missing tail appended. */
async function resolveReal(abs: string): Promise<{ real: string; exists: boolean }> {
  const tail: string[] = [];
  let current = abs;
  for (;;) {
    try {
      const real = await realpath(current);
      return { real: path.join(real, ...tail.reverse()), exists: tail.length === 0 };
    } catch (err) {
      if (code(err) !== 'ENOENT' && code(err) !== 'ENOTDIR') throw err;
      const parent = path.dirname(current);
      if (parent === current) throw err;
      tail.push(path.basename(current));
      current = parent;
    }
  }
}

function checkType(st: Stats, rel: string, want: 'file' | 'dir' | 'any'): void {
  const shown = JSON.stringify(rel || '.');
  if (!st.isFile() && !st.isDirectory()) {
    throw new ConfinementError('special-file', `${shown} is not a regular file or directory (device, FIFO or socket)`);
  }
  if (want === 'file' && !st.isFile()) throw new ConfinementError('not-a-file', `${shown} is a directory, not a file`);
  if (want === 'dir' && !st.isDirectory()) throw new ConfinementError('not-a-directory', `${shown} is not a directory`);
  if (st.isFile() && st.nlink > 1) {
    throw new ConfinementError(
      'hard-link',
      `${shown} has ${st.nlink} hard links; hard-linked files are refused because the other name may be outside the workspace`,
    );
  }
}

/** An existing file or directory, with symlinks resolved and the result still inside the root. */
export async function resolveExisting(
  root: string,
  input: unknown,
  want: 'file' | 'dir' | 'any',
): Promise<ConfinedPath & { real: string; stat: Stats }> {
  const { abs, rel } = lexicalPath(root, input);
  let resolved: { real: string; exists: boolean };
  try {
    resolved = await resolveReal(abs);
  } catch (err) {
    throw new ConfinementError('not-found', `cannot resolve ${JSON.stringify(rel || '.')}: ${(err as Error).message}`);
  }
  if (!isInside(root, resolved.real)) {
    throw new ConfinementError(
      'symlink-escape',
      `${JSON.stringify(rel)} goes through a symlink that points outside the workspace root`,
    );
  }
  if (!resolved.exists) throw new ConfinementError('not-found', `${JSON.stringify(rel || '.')} does not exist`);
  const stat = await lstat(resolved.real);
  checkType(stat, rel, want);
  return { abs, rel, real: resolved.real, stat };
}

/** Checks, after opening, that the descriptor is the inode we checked and that its real path is inside the root. */
async function verifyOpened(root: string, handle: FileHandle, rel: string, expected?: Stats): Promise<Stats> {
  const st = await handle.stat();
  if (expected && (st.ino !== expected.ino || st.dev !== expected.dev)) {
    throw new ConfinementError('symlink-escape', `${JSON.stringify(rel)} changed while it was being opened`);
  }
  checkType(st, rel, 'file');
  const fdPath = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => undefined);
  if (fdPath !== undefined && !isInside(root, fdPath.replace(/ \(deleted\)$/, ''))) {
    throw new ConfinementError('symlink-escape', `${JSON.stringify(rel)} opened a file outside the workspace root`);
  }
  return st;
}

/** Opens a regular, singly-linked file inside the root for reading. The caller closes the handle. */
export async function openForRead(
  root: string,
  input: unknown,
): Promise<{ rel: string; handle: FileHandle; stat: Stats }> {
  const { rel, real, stat } = await resolveExisting(root, input, 'file');
  const handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    return { rel, handle, stat: await verifyOpened(root, handle, rel, stat) };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Reads a whole confined file (for tools that edit it). */
export async function readConfined(root: string, input: unknown): Promise<{ rel: string; data: Buffer }> {
  const { rel, handle } = await openForRead(root, input);
  try {
    return { rel, data: await handle.readFile() };
  } finally {
    await handle.close();
  }
}

/**
 * Checks a write target: inside the root, no symlink anywhere on the path (existing part), not under .git,
 * and if it exists a regular singly-linked file. Returns whether it exists.
 */
export async function checkWriteTarget(root: string, input: unknown): Promise<ConfinedPath & { exists: boolean }> {
  const { abs, rel } = lexicalPath(root, input);
  if (rel === '') throw new ConfinementError('not-a-file', 'the workspace root itself cannot be written as a file');
  if (rel.split(path.sep).some((part) => part.toLowerCase() === '.git')) {
    throw new ConfinementError(
      'git-dir',
      `${JSON.stringify(rel)} is inside .git/; writes there are refused (hooks and config run code)`,
    );
  }
  const { real, exists } = await resolveReal(abs);
  if (!isInside(root, real)) {
    throw new ConfinementError(
      'symlink-escape',
      `${JSON.stringify(rel)} goes through a symlink that points outside the workspace root`,
    );
  }
  if (real !== abs)
    throw new ConfinementError(
      'symlink',
      `${JSON.stringify(rel)} goes through a symlink; writes do not follow symlinks`,
    );
  if (exists) checkType(await lstat(abs), rel, 'file');
  return { abs, rel, exists };
}

/** The current content of a write target, or undefined if it does not exist. */
export async function readWriteTarget(
  root: string,
  input: unknown,
): Promise<{ rel: string; abs: string; current?: Buffer }> {
  const target = await checkWriteTarget(root, input);
  if (!target.exists) return { rel: target.rel, abs: target.abs };
  const { data } = await readConfined(root, target.rel);
  return { rel: target.rel, abs: target.abs, current: data };
}

/** Writes atomically: parents created inside the root, a verified temporary file, then rename over the target. */
export async function writeConfined(root: string, input: unknown, data: Buffer | string): Promise<{ rel: string }> {
  const { abs, rel, exists } = await checkWriteTarget(root, input);
  const mode = exists ? (await lstat(abs)).mode & 0o777 : 0o644;
  const dir = path.dirname(abs);
  await mkdir(dir, { recursive: true });
  if ((await realpath(dir)) !== dir) {
    throw new ConfinementError(
      'symlink',
      `${JSON.stringify(path.dirname(rel))} became a symlink; writes do not follow symlinks`,
    );
  }
  const tmp = path.join(dir, `.agency-write-${randomUUID()}.tmp`);
  const handle = await open(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o644,
  );
  try {
    try {
      await verifyOpened(root, handle, rel);
      await handle.writeFile(data);
      await handle.chmod(mode);
    } finally {
      await handle.close();
    }
    await rename(tmp, abs);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return { rel };
}
