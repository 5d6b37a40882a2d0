/**
 * Circuit breakers around external services (language-model providers now, remote MCP servers later; the API's
 * Temporal connection). One breaker per service per process, so every activity of a worker process shares what it
 * learnt about a provider.
 *
 *   closed     calls go through; `failureThreshold` consecutive counted failures open it
 *   open       calls fail fast with CircuitOpenError (retryAfterMs = what is left of the cool-down)
 *   half_open  after `coolDownMs`: one probe call at a time goes through; success closes, failure re-opens
 *
 * Only errors that `isFailure` accepts count (for models: the retryable classes of model-errors.ts — a 401 or a bad
 * request says the service is up, so it counts as an answer, not an outage).
 *
 * Why not opossum: it opens on an error *percentage* over a rolling window (not N consecutive failures), times calls
 * out itself (10 s by default, shorter than a model call), moves to half-open with a timer instead of on demand, does
 * not tell how long the cool-down has left (which becomes the activity's nextRetryDelay), and only observes calls it
 * makes itself — the API's Temporal guard records outcomes seen by an error handler. This state machine is ~100
 * lines, needs no timers, and takes an injectable clock for its tests (test/unit/circuit-breaker.test.ts).
 *
 * State is exported as agent_agency_circuit_breaker_state{service,state} (common/metrics.ts), read at scrape time.
 */
import {
  circuitBreakerRejectionsTotal,
  errorRecoveryAttempts,
  reportBreakerStatesFrom,
  type BreakerState,
} from './metrics.js';

export type { BreakerState };

export interface CircuitBreakerOptions {
  /** Consecutive counted failures that open the breaker. */
  failureThreshold: number;
  /** How long an open breaker refuses calls before it lets one probe through. */
  coolDownMs: number;
  /** Which errors mean the service is failing; the others count as answers. Default: every error. */
  isFailure?: (err: unknown) => boolean;
  /** Errors that say nothing about the service (the caller gave up: a cancelled activity). Default: none. */
  isNeutral?: (err: unknown) => boolean;
  /** The clock (tests). */
  now?: () => number;
}

/** Thrown instead of calling a service whose breaker is open. */
export class CircuitOpenError extends Error {
  override readonly name = 'CircuitOpenError';
  constructor(
    readonly service: string,
    /** Until the breaker lets a probe through. */
    readonly retryAfterMs: number,
  ) {
    super(`${service} is unavailable (circuit breaker open); retry in ${Math.ceil(retryAfterMs / 1000)} s`);
  }
}

/** Admission to make one call; hand it back with the outcome. */
export interface BreakerTicket {
  /** The one call a half-open breaker lets through. */
  readonly probe: boolean;
  /** The service was failing when the call was admitted: its outcome is a recovery attempt. */
  readonly recovering: boolean;
}

export class CircuitBreaker {
  private opened = false;
  private openedAt = 0;
  private failures = 0;
  private probeStartedAt: number | undefined;
  private readonly now: () => number;

  constructor(
    readonly service: string,
    readonly options: CircuitBreakerOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  get state(): BreakerState {
    if (!this.opened) return 'closed';
    return this.now() - this.openedAt >= this.options.coolDownMs ? 'half_open' : 'open';
  }

  /** Consecutive counted failures so far (reset by an answer). */
  get consecutiveFailures(): number {
    return this.failures;
  }

  /** Milliseconds until an open breaker lets a probe through; 0 when it would admit a call now. */
  retryAfterMs(): number {
    const state = this.state;
    if (state === 'open') return Math.max(0, this.openedAt + this.options.coolDownMs - this.now());
    if (state === 'half_open' && this.probeInFlight()) return Math.min(1000, this.options.coolDownMs);
    return 0;
  }

  /** Admits one call, or throws CircuitOpenError while open (and while another half-open probe is in flight). */
  admit(): BreakerTicket {
    const state = this.state;
    if (state === 'open' || (state === 'half_open' && this.probeInFlight())) {
      circuitBreakerRejectionsTotal.inc({ service: this.service });
      throw new CircuitOpenError(this.service, this.retryAfterMs());
    }
    if (state === 'half_open') {
      this.probeStartedAt = this.now();
      return { probe: true, recovering: true };
    }
    return { probe: false, recovering: this.failures > 0 };
  }

  /** The service answered. */
  succeeded(ticket: BreakerTicket): void {
    if (ticket.recovering) errorRecoveryAttempts.inc({ service: this.service, outcome: 'recovered' });
    // A late answer to a call admitted before the breaker opened does not close it: only its probe does.
    if (this.opened && !ticket.probe) return;
    this.opened = false;
    this.failures = 0;
    this.probeStartedAt = undefined;
  }

  /** The service failed (an error `isFailure` accepts). */
  failed(ticket: BreakerTicket): void {
    if (ticket.recovering) errorRecoveryAttempts.inc({ service: this.service, outcome: 'failed' });
    if (ticket.probe) {
      this.open();
      return;
    }
    if (this.opened) return;
    this.failures += 1;
    if (this.failures >= this.options.failureThreshold) this.open();
  }

  /** The call ended without telling anything about the service: a half-open probe gives its slot back. */
  released(ticket: BreakerTicket): void {
    if (ticket.probe) this.probeStartedAt = undefined;
  }

  /** Runs `fn` through the breaker: fails fast while open, counts the outcome, rethrows fn's error. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const ticket = this.admit();
    try {
      const value = await fn();
      this.succeeded(ticket);
      return value;
    } catch (err) {
      if (this.options.isNeutral?.(err)) this.released(ticket);
      else if (this.options.isFailure?.(err) ?? true) this.failed(ticket);
      else this.succeeded(ticket);
      throw err;
    }
  }

  private open(): void {
    this.opened = true;
    this.openedAt = this.now();
    this.probeStartedAt = undefined;
  }

  /** A probe that has not answered within a cool-down no longer holds the half-open slot. */
  private probeInFlight(): boolean {
    return this.probeStartedAt !== undefined && this.now() - this.probeStartedAt < this.options.coolDownMs;
  }
}

const breakers = new Map<string, CircuitBreaker>();
reportBreakerStatesFrom(() => [...breakers.values()].map((b) => ({ service: b.service, state: b.state })));

/** This process's breaker for a service, created with these options on first use (later options are ignored). */
export function circuitBreakerFor(service: string, options: CircuitBreakerOptions): CircuitBreaker {
  let breaker = breakers.get(service);
  if (!breaker) {
    breaker = new CircuitBreaker(service, options);
    breakers.set(service, breaker);
  }
  return breaker;
}

/** A service name for a URL without its credentials, query or fragment (it becomes a metric label). */
export function serviceOfUrl(kind: string, url: string): string {
  try {
    const u = new URL(url);
    return `${kind}:${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return `${kind}:invalid-url`;
  }
}
