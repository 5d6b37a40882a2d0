/**
 * CPU time by role over a window, read from /proc (Linux): where a burst's cycles went. Each role is a process and
 * its descendants (the API, the workers, the Temporal server, this bench), plus every PostgreSQL backend; what is
 * left is `other`. A process that starts and exits inside the window (a git or gate child) is not seen: the figures
 * are lower bounds for the roles that spawn.
 */
import { readdirSync, readFileSync } from 'node:fs';

export type CpuSnapshot = Map<number, { ppid: number; comm: string; ms: number }>;

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** utime + stime of every process now, in ms; an empty map where /proc cannot be read. */
export function cpuSnapshot(): CpuSnapshot {
  const out: CpuSnapshot = new Map();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is the state (field 3)
      out.set(Number(pid), {
        ppid: Number(fields[1]),
        comm,
        ms: (Number(fields[11]) + Number(fields[12])) * TICK_MS,
      });
    } catch {
      // exited while we read
    }
  }
  return out;
}

/** CPU ms each role used between two snapshots; `roles` maps a name to the pid at the root of its tree. */
export function cpuByRole(
  before: CpuSnapshot,
  after: CpuSnapshot,
  roles: Record<string, number | undefined>,
): Record<string, number> {
  const roleOf = (pid: number): string => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = after.get(p)?.ppid ?? 0, hops++) {
      const role = Object.entries(roles).find(([, root]) => root === p)?.[0];
      if (role) return role;
    }
    return after.get(pid)?.comm === 'postgres' ? 'postgres' : 'other';
  };
  const used: Record<string, number> = Object.fromEntries(
    [...Object.keys(roles), 'postgres', 'other'].map((r) => [r, 0]),
  );
  for (const [pid, now] of after) {
    const role = roleOf(pid);
    used[role] = (used[role] ?? 0) + now.ms - (before.get(pid)?.ms ?? 0);
  }
  return used;
}
