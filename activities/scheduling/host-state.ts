/**
 * Host readings for load- and temperature-aware scheduling (workflows/scheduling/): the hottest CPU thermal zone from
 * /sys/class/thermal where the machine exposes one (bare metal, most laptops; not containers or most VMs), the one-minute
 * load average and core count, available memory, and PSI memory pressure from /proc/pressure/memory (Linux ≥ 4.20).
 *
 * The source is injectable (`createSchedulingActivities({ source })`) so that tests give a high reading and see the
 * workload wait. The `readHostState` activity must be registered by every worker that runs deferrable work: the
 * inference pool (tuning trials) and the federation participants' workers (local training).
 */
import { readFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { HostReading } from '../../workflows/scheduling/decision.js';

export interface HostSource {
  read(): Promise<HostReading>;
}

export interface SystemSourceOptions {
  thermalRoot?: string;
  pressureFile?: string;
  host?: string;
}

/** Thermal zones whose type names a CPU (x86_pkg_temp, coretemp, cpu-thermal, soc…); all zones when none does. */
const CPU_ZONE = /cpu|pkg|core|soc|x86/i;

async function readCpuTempC(root: string): Promise<number | null> {
  let names: string[];
  try {
    names = (await readdir(root)).filter((n) => n.startsWith('thermal_zone'));
  } catch {
    return null;
  }
  const zones = await Promise.all(
    names.map(async (n) => {
      try {
        const [type, temp] = await Promise.all([
          readFile(path.join(root, n, 'type'), 'utf8'),
          readFile(path.join(root, n, 'temp'), 'utf8'),
        ]);
        const milli = Number(temp.trim());
        return Number.isFinite(milli) ? { type: type.trim(), celsius: milli / 1000 } : undefined;
      } catch {
        return undefined;
      }
    }),
  );
  const found = zones.filter((z) => z !== undefined);
  const cpu = found.filter((z) => CPU_ZONE.test(z.type));
  const pick = cpu.length > 0 ? cpu : found;
  return pick.length > 0 ? Math.max(...pick.map((z) => z.celsius)) : null;
}

async function readMemPressurePct(file: string): Promise<number | null> {
  try {
    const match = /^some avg10=([\d.]+)/m.exec(await readFile(file, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** Readings of the machine this process runs on. */
export function systemHostSource(opts: SystemSourceOptions = {}): HostSource {
  return {
    async read() {
      const [cpuTempC, memPressurePct] = await Promise.all([
        readCpuTempC(opts.thermalRoot ?? '/sys/class/thermal'),
        readMemPressurePct(opts.pressureFile ?? '/proc/pressure/memory'),
      ]);
      return {
        host: opts.host ?? os.hostname(),
        at: new Date().toISOString(),
        cores: os.availableParallelism(),
        load1: os.loadavg()[0]!,
        cpuTempC,
        memAvailableFraction: Math.min(1, os.freemem() / os.totalmem()),
        memPressurePct,
      };
    },
  };
}

export function createSchedulingActivities(deps: { source?: HostSource } = {}) {
  const source = deps.source ?? systemHostSource();
  return {
    /** The state of the host this worker runs on (registered on the queue of the host that will run the workload). */
    async readHostState(): Promise<HostReading> {
      return source.read();
    },
  };
}

export type SchedulingActivities = ReturnType<typeof createSchedulingActivities>;
