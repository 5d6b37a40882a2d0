/**
 * Escape attempts against the workspace server. Each attack is first shown to work WITHOUT confinement (plain Node
 * fs, a plain child process, or the server forced unsandboxed), then shown to fail WITH the server and its bubblewrap
 * sandbox, with a clear error, after which the server still answers.
 *
 * If this machine cannot run the sandbox, these tests fail (they do not skip) and say why.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { link, mkdtemp, readFile, rm, symlink, writeFile, chmod, open } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectSandbox, type SandboxInfo } from '../../mcp/workspace-server/sandbox.js';
import { call, connectWorkspaceServer, workspaceServerTransport, type Called } from '../helpers/workspace-server.js';

const SECRET = `s3cret-${process.pid}-${Date.now()}`;

/** run_command that must run in the sandbox: a refusal for want of one fails the test with the detection reason. */
async function runConfined(client: Client, args: Record<string, unknown>): Promise<Called> {
  const result = await call(client, 'run_command', args);
  if (result.text.startsWith('command execution refused: no sandbox')) throw new Error(result.text);
  expect(result.data.sandbox).toBe('bubblewrap');
  return result;
}

function startServer(root: string, env: Record<string, string>): Promise<Client> {
  return connectWorkspaceServer(root, { AGENCY_TEST_SECRET: SECRET, ...env }, 'escape-test');
}

async function alive(client: Client): Promise<void> {
  const listed = await call(client, 'list_dir', {});
  expect(listed.isError).toBe(false);
}

/** Host processes whose command line contains the marker (the sandbox's pid namespace is visible from here). */
function hostProcessesWith(marker: string | RegExp): number {
  let n = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (typeof marker === 'string' ? cmdline.includes(marker) : marker.test(cmdline)) n++;
    } catch {
      /* exited meanwhile */
    }
  }
  return n;
}

const hostProcessCount = (): number => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).length;

describe('escapes from the workspace server', () => {
  let info: SandboxInfo;
  let root: string;
  let outsideDir: string;
  let sandboxed: Client;
  let unsandboxed: Client;
  let refusing: Client;

  beforeAll(async () => {
    // Not thrown here: the confinement tests do not need the sandbox; the sandbox tests fail with the reason.
    info = await detectSandbox();
    root = await mkdtemp(path.join(os.tmpdir(), 'escape-ws-'));
    outsideDir = await mkdtemp(path.join(os.tmpdir(), 'escape-outside-'));
    await writeFile(path.join(root, 'ok.txt'), 'fine\n');
    await symlink('/etc', path.join(root, 'etc-link'));
    const git = (...args: string[]): string =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
        cwd: root,
        encoding: 'utf8',
      });
    git('init', '-q', '-b', 'main');
    git('add', '.');
    git('commit', '-qm', 'a symlink to /etc, committed');
    [sandboxed, unsandboxed, refusing] = await Promise.all([
      startServer(root, {}),
      startServer(root, { SANDBOX_MODE: 'none', SANDBOX_ALLOW_UNSANDBOXED: 'true' }),
      startServer(root, { SANDBOX_MODE: 'none' }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([sandboxed?.close(), unsandboxed?.close(), refusing?.close()]);
    for (const dir of [root, outsideDir]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('this machine can run the sandbox (bubblewrap and a process limit)', () => {
    if (info.kind === 'none') throw new Error(`no sandbox on this machine: ${info.reason}`);
    expect(info.kind).toBe('bubblewrap');
  });

  it('when a path climbs out with ../, then it is refused (outside-root)', async () => {
    await writeFile(path.join(outsideDir, 'secret.txt'), SECRET);
    const climb = path.relative(root, path.join(outsideDir, 'secret.txt'));
    expect(climb.startsWith('..')).toBe(true);
    expect(await readFile(path.join(root, climb), 'utf8')).toBe(SECRET); // without confinement

    for (const [tool, args] of [
      ['read_file', { path: climb }],
      ['write_file', { path: climb, content: 'x' }],
      ['list_dir', { path: '..' }],
      ['search_text', { pattern: 's3cret', path: '../' }],
    ] as const) {
      const refused = await call(sandboxed, tool, args);
      expect(refused.isError, tool).toBe(true);
      expect(refused.text).toContain('resolves outside the workspace root [rule: outside-root]');
    }
    expect(await readFile(path.join(outsideDir, 'secret.txt'), 'utf8')).toBe(SECRET);
    await alive(sandboxed);
  });

  it('when a path is absolute or has a NUL byte, then it is refused', async () => {
    expect(await readFile('/etc/passwd', 'utf8')).toContain('root:'); // without confinement
    const absolute = await call(sandboxed, 'read_file', { path: '/etc/passwd' });
    expect(absolute.isError).toBe(true);
    expect(absolute.text).toContain('[rule: absolute-path]');
    const nul = await call(sandboxed, 'read_file', { path: 'ok.txt\0/etc/passwd' });
    expect(nul.text).toContain('[rule: nul-byte]');
    await alive(sandboxed);
  });

  it('when the repository commits a symlink to /etc, then reads and writes through it are refused', async () => {
    expect(await readFile(path.join(root, 'etc-link', 'passwd'), 'utf8')).toContain('root:'); // without confinement
    const read = await call(sandboxed, 'read_file', { path: 'etc-link/passwd' });
    expect(read.isError).toBe(true);
    expect(read.text).toContain('points outside the workspace root [rule: symlink-escape]');
    const write = await call(sandboxed, 'write_file', { path: 'etc-link/agency-pwned', content: 'x' });
    expect(write.isError).toBe(true);
    expect(write.text).toContain('[rule: symlink-escape]');
    expect(existsSync('/etc/agency-pwned')).toBe(false);
    expect((await call(sandboxed, 'list_dir', { path: 'etc-link' })).text).toContain('[rule: symlink-escape]');
    await alive(sandboxed);
  });

  it('when run_command creates a symlink to /etc/passwd, then read_file refuses it and the sandbox only has a fake passwd', async () => {
    const made = await runConfined(sandboxed, { argv: ['sh', '-c', 'ln -s /etc/passwd pw && cat pw'] });
    expect(made.data.exitCode).toBe(0);
    expect(made.data.output).toContain('sandbox:x:1000');
    expect(made.data.output).not.toContain('daemon:');
    expect(await readFile(path.join(root, 'pw'), 'utf8')).toContain('daemon:'); // without confinement: the host file
    const read = await call(sandboxed, 'read_file', { path: 'pw' });
    expect(read.isError).toBe(true);
    expect(read.text).toContain('[rule: symlink-escape]');
    await alive(sandboxed);
  });

  it('when a file is hard-linked to a file outside the root, then it is refused for read, write and search', async () => {
    const outside = path.join(outsideDir, 'linked-secret.txt');
    await writeFile(outside, `${SECRET}\n`);
    await link(outside, path.join(root, 'hl.txt'));
    expect(await readFile(path.join(root, 'hl.txt'), 'utf8')).toBe(`${SECRET}\n`); // without confinement

    const read = await call(sandboxed, 'read_file', { path: 'hl.txt' });
    expect(read.isError).toBe(true);
    expect(read.text).toContain('has 2 hard links');
    expect(read.text).toContain('[rule: hard-link]');
    const write = await call(sandboxed, 'write_file', { path: 'hl.txt', content: 'overwritten' });
    expect(write.text).toContain('[rule: hard-link]');
    const patch = await call(sandboxed, 'apply_patch', {
      path: 'hl.txt',
      edits: [{ old_text: SECRET, new_text: 'x' }],
    });
    expect(patch.text).toContain('[rule: hard-link]');
    const search = await call(sandboxed, 'search_text', { pattern: SECRET });
    expect(search.data.matches).toEqual([]);
    expect(await readFile(outside, 'utf8')).toBe(`${SECRET}\n`);
    await alive(sandboxed);
  });

  it('when a FIFO or a symlink to /dev/zero is read, then it is refused instead of hanging or streaming forever', async () => {
    execFileSync('mkfifo', [path.join(root, 'fifo')]);
    const blocked = spawnSync('cat', [path.join(root, 'fifo')], { timeout: 500 }); // without confinement: hangs
    expect(blocked.signal).toBe('SIGTERM');
    const fifo = await call(sandboxed, 'read_file', { path: 'fifo' });
    expect(fifo.isError).toBe(true);
    expect(fifo.text).toContain('not a regular file or directory (device, FIFO or socket) [rule: special-file]');

    await symlink('/dev/zero', path.join(root, 'zero'));
    const handle = await open(path.join(root, 'zero'));
    const { bytesRead } = await handle.read(Buffer.alloc(1 << 20), 0, 1 << 20, null); // without confinement
    await handle.close();
    expect(bytesRead).toBe(1 << 20);
    const zero = await call(sandboxed, 'read_file', { path: 'zero' });
    expect(zero.isError).toBe(true);
    expect(zero.text).toContain('[rule: symlink-escape]');
    await alive(sandboxed);
  });

  it('when a command reads the environment or /proc/*/environ, then the server secret is not there', async () => {
    // Without confinement: an inherited environment shows the secret, and even a minimal one does not hide the
    // parent's /proc/<ppid>/environ.
    const inherited = spawnSync('sh', ['-c', 'echo $AGENCY_TEST_SECRET'], {
      env: { ...process.env, AGENCY_TEST_SECRET: SECRET },
      encoding: 'utf8',
    });
    expect(inherited.stdout).toContain(SECRET);
    const parent = await call(unsandboxed, 'run_command', { argv: ['sh', '-c', 'cat /proc/$PPID/environ'] });
    expect(parent.data.sandbox).toBe('none');
    expect(parent.data.output).toContain(SECRET);

    const echo = await runConfined(sandboxed, { argv: ['sh', '-c', 'echo "[$AGENCY_TEST_SECRET]"; env'] });
    expect(echo.data.output).toContain('[]');
    expect(echo.data.output).not.toContain(SECRET);
    const procs = await runConfined(sandboxed, {
      argv: ['sh', '-c', 'for f in /proc/[0-9]*/environ; do cat "$f"; echo; done; cat /proc/self/environ; ls /proc'],
    });
    expect(procs.data.exitCode).toBe(0);
    expect(procs.data.output).toContain('HOME=');
    expect(procs.data.output).not.toContain(SECRET);
    expect(procs.data.output).not.toContain('AGENCY_TEST_SECRET');
    await alive(sandboxed);
  });

  it('when a command opens a TCP connection to a host port (a listener, PostgreSQL), then it cannot connect', async () => {
    const listener = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.end('hello\n');
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const port = (listener.address() as net.AddressInfo).port;
    // A listener of the test's own, and PostgreSQL on its loopback port (running on every machine this suite runs on).
    const connectTo = (p: number) => `const s = require('net').connect(${p}, '127.0.0.1');
      s.on('connect', () => { console.log('connected'); s.destroy(); });
      s.on('error', (e) => { console.log('failed: ' + e.code); process.exitCode = 3; });`;
    try {
      for (const target of [port, 5432]) {
        const connect = connectTo(target);
        const unconfined = await call(unsandboxed, 'run_command', { argv: ['node', '-e', connect] });
        expect(unconfined.data.output, `port ${target}`).toContain('connected');
        const confined = await runConfined(sandboxed, { argv: ['node', '-e', connect] });
        expect(confined.isError).toBe(false);
        expect(confined.data.output).toMatch(/failed: (ECONNREFUSED|ENETUNREACH)/);
        expect(confined.data.exitCode).toBe(3);
      }
    } finally {
      listener.close();
    }
    await alive(sandboxed);
  });

  it('when a command starts 300 processes, then without a sandbox it gets them and with one it hits the process limit', async () => {
    const many =
      'for i in $(seq 300); do sleep 3 & done; echo "running $(jobs -p | wc -l)"; kill $(jobs -p) 2>/dev/null; true';
    const unconfined = await call(unsandboxed, 'run_command', { argv: ['bash', '-c', many], timeout_seconds: 20 });
    expect(unconfined.data.output).toContain('running 300');
    const confined = await runConfined(sandboxed, { argv: ['bash', '-c', many], timeout_seconds: 4 });
    expect(confined.isError).toBe(true);
    expect(confined.data.limit).toBe('processes');
    expect(confined.text).toContain('process limit: the command tried to run more than 128 processes');
    await alive(sandboxed);
  });

  it('when a real fork bomb runs in the sandbox, then the process limit holds, it is killed, and the host is fine', async () => {
    // The shell stays (sleep) so the bomb keeps trying until the timeout; it would otherwise end with the shell,
    // because its exit takes down the sandbox's pid namespace.
    const marker = `bomb-${process.pid}-${Date.now()}`;
    const before = hostProcessCount();
    const bomb = await runConfined(sandboxed, {
      argv: ['bash', '-c', `:(){ :|:& };:; sleep 10 # ${marker}`],
      timeout_seconds: 3,
    });
    expect(bomb.isError).toBe(true);
    expect(bomb.data.limit).toBe('processes');
    expect(bomb.text).toContain('process limit');
    expect(bomb.data.durationMs).toBeLessThan(6_000);
    expect(hostProcessesWith(marker)).toBe(0);
    expect(hostProcessCount()).toBeLessThan(before + 20);
    await alive(sandboxed);
  });

  it('when a command loops forever, then it is killed at its timeout', async () => {
    const marker = `loop-${process.pid}-${Date.now()}`;
    const loop = `for(;;){} /* ${marker} */`;
    const child = spawn(process.execPath, ['-e', loop], { stdio: 'ignore' }); // without confinement
    await new Promise((r) => setTimeout(r, 2_000));
    expect(child.exitCode).toBeNull();
    expect(hostProcessesWith(marker)).toBe(1);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const confined = await runConfined(sandboxed, { argv: ['node', '-e', loop], timeout_seconds: 2 });
    expect(confined.isError).toBe(true);
    expect(confined.data).toMatchObject({ limit: 'time', timedOut: true, signal: 'SIGKILL' });
    expect(confined.text).toContain('time limit: the command was killed after 2 s');
    expect(confined.data.durationMs).toBeLessThan(4_000);
    expect(hostProcessesWith(marker)).toBe(0);
    await alive(sandboxed);
  });

  it('when a command writes 100 MB, then it is cut at the output cap and killed quickly', async () => {
    const flood = 'process.stdout.write(Buffer.alloc(100 * 1024 * 1024, 97))';
    const unconfined = spawnSync(process.execPath, ['-e', flood], { maxBuffer: 200 * 1024 * 1024 });
    expect(unconfined.stdout.length).toBe(100 * 1024 * 1024); // without confinement

    const confined = await runConfined(sandboxed, { argv: ['node', '-e', flood] });
    expect(confined.isError).toBe(true);
    expect(confined.data).toMatchObject({ limit: 'output', truncated: true, signal: 'SIGKILL' });
    expect(Buffer.byteLength(confined.data.output as string)).toBeLessThanOrEqual(1024 * 1024);
    expect(confined.data.durationMs).toBeLessThan(5_000);
    expect(confined.text).toContain('output limit');
    await alive(sandboxed);
  });

  it('when .git/config asks git to run code, then git_status and git_diff do not run it, and .git is not writable', async () => {
    const marker = path.join(outsideDir, 'git-pwned');
    const hook = path.join(outsideDir, 'hook.sh');
    await writeFile(hook, `#!/bin/sh\ntouch ${marker}\n`);
    await chmod(hook, 0o755);
    execFileSync('git', ['config', 'core.fsmonitor', hook], { cwd: root });
    execFileSync('git', ['config', 'filter.evil.clean', hook], { cwd: root });
    await writeFile(path.join(root, '.gitattributes'), '* filter=evil\n');
    spawnSync('git', ['status', '--porcelain'], { cwd: root }); // without confinement: runs the hook
    expect(existsSync(marker)).toBe(true);
    await rm(marker);

    const status = await call(sandboxed, 'git_status');
    expect(status.isError).toBe(false);
    expect(status.data.output).toContain('?? .gitattributes');
    const diff = await call(sandboxed, 'git_diff');
    expect(diff.isError).toBe(false);
    expect(existsSync(marker)).toBe(false);

    const hookWrite = await call(sandboxed, 'write_file', { path: '.git/hooks/pre-commit', content: '#!/bin/sh\n' });
    expect(hookWrite.isError).toBe(true);
    expect(hookWrite.text).toContain('[rule: git-dir]');
    execFileSync('git', ['config', '--unset', 'core.fsmonitor'], { cwd: root });
    await alive(sandboxed);
  });

  it('when .git/config points core.worktree at /etc, then git_diff still diffs the workspace, not host files', async () => {
    const git = (...args: string[]): string => execFileSync('git', args, { cwd: root, encoding: 'utf8' });
    const blob = execFileSync('git', ['hash-object', '-w', '--stdin'], {
      cwd: root,
      input: 'x\n',
      encoding: 'utf8',
    }).trim();
    git('update-index', '--add', '--cacheinfo', `100644,${blob},passwd`);
    git('config', 'core.worktree', '/etc');
    try {
      expect(git('diff', '--', 'passwd')).toContain('+root:x:0:0:'); // without confinement: host /etc/passwd leaks
      const diff = await call(sandboxed, 'git_diff');
      expect(diff.isError).toBe(false);
      expect(diff.data.diff).toContain('deleted file mode 100644');
      expect(diff.data.diff).not.toContain('root:x:0:0:');
    } finally {
      git('config', '--unset', 'core.worktree');
      git('rm', '-q', '--cached', 'passwd');
    }
    await alive(sandboxed);
  });

  it('when the server is killed mid-command, then the sandboxed command dies with it', async () => {
    const marker = `orphan-${process.pid}-${Date.now()}`;
    const transport = workspaceServerTransport(root);
    const doomed = new Client({ name: 'doomed', version: '1.0.0' });
    await doomed.connect(transport);
    const pending = doomed
      .callTool({ name: 'run_command', arguments: { argv: ['sh', '-c', `sleep 30; : ${marker}`] } })
      .catch(() => undefined);
    // Wait for the shell inside the sandbox (its argv starts ".../sh -c <script>"), not just the launcher: killing the
    // server in the instant before setpriv has set the death signal would test the kernel's race, not the sandbox.
    const inner = new RegExp(`^[^\\0]*/sh\\0-c\\0sleep 30; : ${marker}`);
    await expect.poll(() => hostProcessesWith(inner), { timeout: 10_000, interval: 50 }).toBe(1);
    process.kill(transport.pid!, 'SIGKILL');
    await expect.poll(() => hostProcessesWith(marker), { timeout: 3_000, interval: 50 }).toBe(0);
    await doomed.close().catch(() => undefined);
    await pending;
  });

  it('when there is no sandbox and unsandboxed runs are not allowed, then run_command is refused with the fix', async () => {
    const refused = await call(refusing, 'run_command', { argv: ['true'] });
    expect(refused.isError).toBe(true);
    expect(refused.text).toBe(
      'command execution refused: no sandbox (sandbox disabled (SANDBOX_MODE=none)); ' +
        'install bubblewrap (Debian package `bubblewrap`) or set SANDBOX_ALLOW_UNSANDBOXED=true',
    );
    await alive(refusing);
  });
});
