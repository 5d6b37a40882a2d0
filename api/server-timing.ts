/**
 * Server-Timing (W3C): where a request's time went, as a response header that browsers' developer tools and the
 * benchmark read (bench/load.ts). `received` is set first thing in the app; a route adds the phases it measures,
 * and the header also names the time before the route ran (`pre`: parsing, authentication, rate limiting) and the
 * whole request (`total`) as it stood when the headers were written.
 */
import { performance } from 'node:perf_hooks';
import type { RequestHandler, Response } from 'express';

interface Timing {
  received: number;
  routed?: number;
  phases: [string, number][];
}

export const serverTiming: RequestHandler = (_req, res, next) => {
  const timing: Timing = { received: performance.now(), phases: [] };
  res.locals.timing = timing;
  next();
};

/** Sets the Server-Timing header from what `timed` measured (call it just before the response is sent). */
export function sendServerTiming(res: Response): void {
  const timing = res.locals.timing as Timing | undefined;
  if (!timing) return;
  const parts = [
    ...(timing.routed === undefined ? [] : [`pre;dur=${(timing.routed - timing.received).toFixed(1)}`]),
    ...timing.phases.map(([name, ms]) => `${name};dur=${ms.toFixed(1)}`),
    `total;dur=${(performance.now() - timing.received).toFixed(1)}`,
  ];
  res.setHeader('Server-Timing', parts.join(', '));
}

/** The route's phase `name` is `work`: its duration goes in the Server-Timing header. */
export async function timed<T>(res: Response, name: string, work: () => Promise<T>): Promise<T> {
  const timing = res.locals.timing as Timing | undefined;
  if (timing && timing.routed === undefined) timing.routed = performance.now();
  const began = performance.now();
  try {
    return await work();
  } finally {
    timing?.phases.push([name, performance.now() - began]);
  }
}

/** A Server-Timing header read back into {phase: ms} (the benchmark's side). */
export function parseServerTiming(header: string | null): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of (header ?? '').split(',')) {
    const [name, ...params] = part.trim().split(';');
    const dur = params.map((p) => /^dur=([\d.]+)$/.exec(p.trim())?.[1]).find((d) => d !== undefined);
    if (name && dur !== undefined) out[name] = Number(dur);
  }
  return out;
}
