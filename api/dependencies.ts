/**
 * Routes whose dependency is down answer 503 problem+json with Retry-After, at once, instead of every request waiting
 * out the Temporal client's own retries (about 20 s when the server is unreachable) and ending in a 500.
 *
 * The Temporal-backed routers (tasks, council, tools) are mounted inside temporalRoutes(), which puts a circuit breaker
 * (common/circuit-breaker.ts, service `temporal:<address>`) around them:
 *   - a request that fails with gRPC UNAVAILABLE opens it (one failure is enough: the client already retried for
 *     ~20 s) and answers 503 with Retry-After;
 *   - while open, requests answer 503 with Retry-After = the rest of the cool-down, without calling Temporal;
 *   - after the cool-down, the next request first runs a 2-second health probe (describeNamespace): on success the
 *     breaker closes and the request proceeds; on failure it re-opens and the request answers 503.
 * The breaker's state is agent_agency_circuit_breaker_state{service="temporal:…"}.
 */
import { Router, type ErrorRequestHandler, type RequestHandler } from 'express';
import {
  circuitBreakerFor,
  CircuitOpenError,
  type BreakerTicket,
  type CircuitBreaker,
} from '../common/circuit-breaker.js';
import type { AppDeps } from './app.js';
import { HttpProblem } from './errors.js';

/** Path prefixes of the routers that need Temporal for every route. */
export const TEMPORAL_PATHS = ['/api/v1/tasks', '/api/v1/council', '/api/v1/tools'];
const GRPC_UNAVAILABLE = 14;
const PROBE_TIMEOUT_MS = 2_000;
const COOL_DOWN_MS = 5_000;

/** A gRPC status `code` anywhere in the error's cause chain (the client's ServiceError wraps the gRPC error). */
export function hasGrpcCode(err: unknown, code: number): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current !== null && typeof current === 'object'; depth++) {
    if ((current as { code?: unknown }).code === code) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** A gRPC UNAVAILABLE anywhere in the error's cause chain. */
export function isTemporalUnavailable(err: unknown): boolean {
  return hasGrpcCode(err, GRPC_UNAVAILABLE);
}

export function temporalBreaker(address: string): CircuitBreaker {
  return circuitBreakerFor(`temporal:${address}`, {
    failureThreshold: 1,
    coolDownMs: COOL_DOWN_MS,
    isFailure: isTemporalUnavailable,
  });
}

function temporalDown(retryAfterMs: number): HttpProblem {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new HttpProblem(
    503,
    'Service Unavailable',
    `Temporal is unreachable; retry in ${seconds} s`,
    { dependency: 'temporal' },
    { 'Retry-After': String(seconds) },
  );
}

/** The given routers behind the Temporal breaker (mounted on TEMPORAL_PATHS). */
export function temporalRoutes(deps: AppDeps, ...routers: Router[]): Router {
  const { temporal, config, log } = deps;
  const breaker = temporalBreaker(config.TEMPORAL_ADDRESS);
  const probe = async (): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        temporal.connection.withDeadline(Date.now() + PROBE_TIMEOUT_MS, () =>
          temporal.workflowService.describeNamespace({ namespace: config.TEMPORAL_NAMESPACE }),
        ),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('no answer')), PROBE_TIMEOUT_MS);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };

  const guard: RequestHandler = async (req, res, next) => {
    // The metrics label of a request answered here, before any route matched: /api/v1/tasks/*.
    res.locals.routeGroup = `${req.baseUrl}/*`;
    let ticket: BreakerTicket;
    try {
      ticket = breaker.admit();
    } catch (err) {
      if (err instanceof CircuitOpenError) throw temporalDown(err.retryAfterMs);
      throw err;
    }
    if (ticket.probe) {
      try {
        await probe();
      } catch {
        breaker.failed(ticket);
        throw temporalDown(breaker.retryAfterMs());
      }
      breaker.succeeded(ticket);
      log.info({ service: breaker.service }, 'Temporal reachable again: circuit breaker closed');
      return next();
    }
    res.once('close', () => {
      if (!res.locals.temporalUnavailable) breaker.succeeded(ticket);
    });
    res.locals.temporalTicket = ticket;
    next();
  };

  const mapUnavailable: ErrorRequestHandler = (err: unknown, _req, res, next) => {
    if (!isTemporalUnavailable(err)) return next(err);
    res.locals.temporalUnavailable = true;
    const ticket = res.locals.temporalTicket as BreakerTicket | undefined;
    if (ticket) breaker.failed(ticket);
    log.warn(
      { correlationId: res.locals.correlationId, service: breaker.service, err },
      'Temporal unreachable: answering 503 until a probe succeeds',
    );
    next(temporalDown(breaker.retryAfterMs() || COOL_DOWN_MS));
  };

  const router = Router();
  router.use(TEMPORAL_PATHS, guard);
  for (const r of routers) router.use(r);
  router.use(mapUnavailable);
  return router;
}
