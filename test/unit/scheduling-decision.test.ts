/**
 * Load- and temperature-aware scheduling, the pure part: the run-or-wait decision (workflows/scheduling/decision.ts) and
 * the host readings (activities/scheduling/host-state.ts) from a fake /sys/class/thermal and /proc/pressure/memory.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSchedulingActivities, systemHostSource } from '../../activities/scheduling/host-state.js';
import { decide, type HostReading, type Workload } from '../../workflows/scheduling/decision.js';

const NOW = Date.parse('2026-12-02T03:00:00Z');
const calm: HostReading = {
  host: 'h',
  at: new Date(NOW).toISOString(),
  cores: 2,
  load1: 0.2,
  cpuTempC: null,
  memAvailableFraction: 0.6,
  memPressurePct: 0,
};
const busy: HostReading = { ...calm, load1: 6 };
const trial: Workload = {
  name: 'tuning trial',
  priority: 'low',
  deferrable: true,
  estimatedDurationMs: 10_000,
  expectedLoad: 1,
};
const policy = { maxDelayMs: 60_000, checkIntervalMs: 10_000 };

describe('the scheduling decision', () => {
  it('when the host is over its load threshold, then deferrable work waits one check interval, and says why', () => {
    const d = decide(trial, busy, policy, 0, NOW);
    expect(d).toMatchObject({ action: 'defer', waitMs: 10_000, reason: 'over-threshold', atRisk: false });
    expect(d.over[0]).toMatch(/load per core 3\.50/);
  });

  it('when work is not deferrable, then it runs at once under any reading', () => {
    const urgent = { ...trial, deferrable: false };
    expect(decide(urgent, busy, policy, 0, NOW)).toMatchObject({ action: 'run', reason: 'not-deferrable' });
    const hot = { ...calm, cpuTempC: 105, memAvailableFraction: 0.01, memPressurePct: 90 };
    expect(decide(urgent, hot, policy, 0, NOW)).toMatchObject({ action: 'run', reason: 'not-deferrable' });
  });

  it('when the host is calm, then deferrable work runs; its own expected load counts towards the threshold', () => {
    expect(decide(trial, calm, policy, 0, NOW)).toMatchObject({ action: 'run', reason: 'host-ok' });
    // 1 (host) + 2.5 (this workload) over 2 cores = 1.75 per core > 1.5.
    expect(decide({ ...trial, expectedLoad: 2.5 }, { ...calm, load1: 1 }, policy, 0, NOW).action).toBe('defer');
  });

  it('when the machine exposes a CPU temperature, then it decides on the temperature, not the load', () => {
    expect(decide(trial, { ...busy, cpuTempC: 60 }, policy, 0, NOW).action).toBe('run');
    const d = decide(trial, { ...calm, cpuTempC: 92 }, policy, 0, NOW);
    expect(d.action).toBe('defer');
    expect(d.over).toEqual(['CPU 92 °C > 85 °C']);
  });

  it('when memory is short or under pressure, then it waits', () => {
    expect(decide(trial, { ...calm, memAvailableFraction: 0.05 }, policy, 0, NOW).over[0]).toMatch(/memory available/);
    expect(decide(trial, { ...calm, memPressurePct: 35 }, policy, 0, NOW).over[0]).toMatch(/memory pressure/);
  });

  it("when the maximum delay (the priority's share of it) is used up, then it runs although the host is busy", () => {
    expect(decide(trial, busy, policy, 55_000, NOW)).toMatchObject({ action: 'defer', waitMs: 5_000 });
    expect(decide(trial, busy, policy, 60_000, NOW)).toMatchObject({ action: 'run', reason: 'max-delay' });
    // High priority waits at most 20% of the maximum delay, normal 50%.
    expect(decide({ ...trial, priority: 'high' }, busy, policy, 12_000, NOW).reason).toBe('max-delay');
    expect(decide({ ...trial, priority: 'normal' }, busy, policy, 25_000, NOW)).toMatchObject({ waitMs: 5_000 });
  });

  it('when a deadline is near, then the wait ends in time to finish, and a start too late for it is flagged at risk', () => {
    // Deadline in 30 s, 10 s of work, 5 s margin: it must start within 15 s.
    const round = { ...policy, checkIntervalMs: 60_000, deadline: new Date(NOW + 30_000).toISOString() };
    expect(decide(trial, busy, round, 0, NOW)).toMatchObject({ action: 'defer', waitMs: 15_000, atRisk: false });
    expect(decide(trial, busy, round, 15_000, NOW + 15_000)).toMatchObject({
      action: 'run',
      reason: 'deadline',
      atRisk: false,
    });
    expect(decide(trial, calm, round, 0, NOW + 20_000)).toMatchObject({ action: 'run', atRisk: true });
    expect(decide({ ...trial, deferrable: false }, busy, round, 0, NOW + 20_000).atRisk).toBe(true);
  });

  it('when there is no reading, then deferrable work runs rather than wait blind', () => {
    expect(decide(trial, undefined, policy, 0, NOW)).toMatchObject({ action: 'run', reason: 'no-reading' });
  });
});

describe('host readings', () => {
  it('when thermal zones and PSI are exposed, then the hottest CPU zone and the memory pressure are read', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'thermal-'));
    const zone = async (name: string, type: string, milli: string) => {
      await mkdir(path.join(root, name));
      await writeFile(path.join(root, name, 'type'), `${type}\n`);
      await writeFile(path.join(root, name, 'temp'), `${milli}\n`);
    };
    await zone('thermal_zone0', 'acpitz', '99000');
    await zone('thermal_zone1', 'x86_pkg_temp', '71500');
    await zone('thermal_zone2', 'coretemp', '68000');
    const pressure = path.join(root, 'memory');
    await writeFile(
      pressure,
      'some avg10=12.50 avg60=3.00 avg300=1.00 total=1\nfull avg10=0.00 avg60=0 avg300=0 total=0\n',
    );
    const reading = await systemHostSource({ thermalRoot: root, pressureFile: pressure, host: 'box' }).read();
    expect(reading).toMatchObject({
      host: 'box',
      cpuTempC: 71.5,
      memPressurePct: 12.5,
      cores: os.availableParallelism(),
    });
    expect(reading.load1).toBeGreaterThanOrEqual(0);
  });

  it('when the machine exposes neither, then the temperature and pressure are null and load decides', async () => {
    const reading = await systemHostSource({ thermalRoot: '/nonexistent', pressureFile: '/nonexistent' }).read();
    expect(reading.cpuTempC).toBeNull();
    expect(reading.memPressurePct).toBeNull();
    expect(reading.memAvailableFraction).toBeGreaterThan(0);
  });

  it('when a source is injected, then the activity returns its reading', async () => {
    const acts = createSchedulingActivities({ source: { read: () => Promise.resolve(busy) } });
    await expect(acts.readHostState()).resolves.toEqual(busy);
  });
});
