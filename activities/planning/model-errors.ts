/**
 * One place that decides what a failed language-model call means for Temporal: which failures are worth another
 * attempt (rate limits, overload, server errors, lost connections, timeouts), which are not (bad request, bad key,
 * no access, unknown model, unprocessable input, malformed model output), and how long the server asked us to wait.
 * The SDKs' own retries are off (`maxRetries: 0`), so the activity's retry policy is the only retry loop.
 */
import {
  APIConnectionError as AnthropicConnectionError,
  APIConnectionTimeoutError as AnthropicTimeoutError,
  APIUserAbortError as AnthropicUserAbortError,
} from '@anthropic-ai/sdk';
import { ApplicationFailure } from '@temporalio/activity';
import {
  APIConnectionError as OpenAIConnectionError,
  APIConnectionTimeoutError as OpenAITimeoutError,
  APIUserAbortError as OpenAIUserAbortError,
} from 'openai';
import { CircuitOpenError } from '../../common/circuit-breaker.js';
import { ConfigError } from '../../common/config.js';
import type { TokenUsage } from './model-budget.js';

export interface ModelErrorClass {
  retryable: boolean;
  /** The wait the server asked for (Retry-After / retry-after-ms), for retryable failures only. */
  retryAfterMs?: number;
  status?: number;
  /** Stable failure type, used as the ApplicationFailure type (and in a retry policy's nonRetryableErrorTypes). */
  type: string;
  message: string;
}

/** The model answered, but not in the shape we asked for (unparseable tool arguments, no choices, no JSON). */
export class ModelOutputError extends Error {
  override readonly name = 'ModelOutputError';
  /** Tokens the bad answer still cost, so the caller can charge them. */
  readonly usage: TokenUsage | undefined;
  readonly costUsd: number | undefined;
  /** The offending output, truncated. */
  readonly raw: string | undefined;

  constructor(message: string, details: { usage?: TokenUsage; costUsd?: number; raw?: string; cause?: unknown } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.usage = details.usage;
    this.costUsd = details.costUsd;
    this.raw = details.raw === undefined ? undefined : truncate(details.raw, 2000);
  }
}

const STATUS_TYPES: Record<number, string> = {
  400: 'ModelBadRequest',
  401: 'ModelAuthenticationFailed',
  402: 'ModelPaymentRequired',
  403: 'ModelPermissionDenied',
  404: 'ModelNotFound',
  408: 'ModelRequestTimeout',
  409: 'ModelConflict',
  413: 'ModelRequestTooLarge',
  422: 'ModelUnprocessable',
  429: 'ModelRateLimited',
};

/** What a status means for whoever reads the failure (a task's reason, a log line), and what to check. */
const STATUS_MEANINGS: Record<number, string> = {
  400: 'bad request',
  401: 'authentication failed: check LLM_API_KEY',
  402: 'payment required: check the account behind LLM_API_KEY',
  403: 'permission denied: check that LLM_API_KEY may use LLM_MODEL',
  404: 'not found: check LLM_MODEL and LLM_BASE_URL',
  408: 'request timeout',
  409: 'conflict',
  413: 'request too large',
  422: 'unprocessable request',
  429: 'rate limited',
};

/** Network failures worth another attempt, by Node / undici error code. */
const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** 408, 409, 429 and every 5xx (including Anthropic's 529 overloaded) are transient; other statuses are not. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/** Classifies an error thrown by either SDK (or by the network underneath) for the retry decision. */
export function classifyModelError(err: unknown, now: number = Date.now()): ModelErrorClass {
  // The provider's breaker is open (common/circuit-breaker.ts): no call was made; retry once the cool-down is over.
  if (err instanceof CircuitOpenError) {
    return { retryable: true, type: 'ModelCircuitOpen', retryAfterMs: err.retryAfterMs, message: err.message };
  }
  if (err instanceof ModelOutputError) {
    return { retryable: false, type: 'ModelOutputError', message: err.message };
  }
  // The model cannot even be built (LLM_MODEL missing, say): no attempt will do better until someone fixes the config.
  if (err instanceof ConfigError) {
    return {
      retryable: false,
      type: 'ModelMisconfigured',
      message: `the language model is misconfigured: ${err.message}`,
    };
  }
  if (isUserAbort(err)) {
    return { retryable: false, type: 'ModelRequestAborted', message: messageOf(err) };
  }
  if (isTimeout(err)) {
    return { retryable: true, type: 'ModelTimeout', message: `model request timed out: ${messageOf(err)}` };
  }
  if (err instanceof OpenAIConnectionError || err instanceof AnthropicConnectionError) {
    return { retryable: true, type: 'ModelConnectionError', message: connectionMessage(err) };
  }
  const status = statusOf(err);
  if (status !== undefined) {
    const retryable = isRetryableStatus(status);
    const meaning = STATUS_MEANINGS[status];
    const result: ModelErrorClass = {
      retryable,
      status,
      type: STATUS_TYPES[status] ?? (status >= 500 ? 'ModelServerError' : 'ModelClientError'),
      message: `model API returned ${status}${meaning ? ` (${meaning})` : ''}: ${messageOf(err)}`,
    };
    if (retryable) {
      const retryAfterMs = retryAfterFromHeaders(headersOf(err), now);
      if (retryAfterMs !== undefined) result.retryAfterMs = retryAfterMs;
    }
    return result;
  }
  const code = networkCode(err);
  if (code !== undefined) {
    return { retryable: true, type: 'ModelConnectionError', message: `${code}: ${messageOf(err)}` };
  }
  // Anything else is a defect on our side (a bad argument, a bug): retrying would repeat it and spend budget.
  return { retryable: false, type: 'ModelClientError', message: messageOf(err) };
}

/**
 * The ApplicationFailure an activity throws for a failed model call: non-retryable classes stop the activity's
 * retries, and a server-requested wait becomes the next retry delay. An ApplicationFailure passes through unchanged.
 */
export function toActivityFailure(err: unknown, now: number = Date.now()): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const c = classifyModelError(err, now);
  return ApplicationFailure.create({
    type: c.type,
    message: c.message,
    nonRetryable: !c.retryable,
    nextRetryDelay: c.retryAfterMs !== undefined && c.retryAfterMs > 0 ? c.retryAfterMs : undefined,
    details: [{ status: c.status ?? null, retryAfterMs: c.retryAfterMs ?? null }],
    cause: err instanceof Error ? err : undefined,
  });
}

/**
 * Milliseconds to wait from `retry-after-ms` (milliseconds), else `retry-after` (seconds or an HTTP date).
 * Returns undefined when neither header is present or parseable; a date in the past gives 0.
 */
export function retryAfterFromHeaders(headers: unknown, now: number = Date.now()): number | undefined {
  const ms = headerValue(headers, 'retry-after-ms');
  if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms)) return Math.round(Number(ms));
  const value = headerValue(headers, 'retry-after');
  if (value === undefined) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

function headerValue(headers: unknown, name: string): string | undefined {
  if (headers === null || typeof headers !== 'object') return undefined;
  if (typeof (headers as Headers).get === 'function') {
    const v = (headers as Headers).get(name);
    return v === null ? undefined : v.trim();
  }
  for (const [key, v] of Object.entries(headers as Record<string, unknown>)) {
    if (key.toLowerCase() !== name) continue;
    if (typeof v === 'string') return v.trim();
    if (Array.isArray(v) && typeof v[0] === 'string') return v[0].trim();
  }
  return undefined;
}

function statusOf(err: unknown): number | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const status = (err as { status?: unknown }).status;
  return typeof status === 'number' && Number.isInteger(status) && status >= 100 && status <= 599 ? status : undefined;
}

function headersOf(err: unknown): unknown {
  return err !== null && typeof err === 'object' ? (err as { headers?: unknown }).headers : undefined;
}

function isUserAbort(err: unknown): boolean {
  if (err instanceof OpenAIUserAbortError || err instanceof AnthropicUserAbortError) return true;
  return err instanceof Error && err.name === 'AbortError';
}

function isTimeout(err: unknown): boolean {
  if (err instanceof OpenAITimeoutError || err instanceof AnthropicTimeoutError) {
    return true;
  }
  return err instanceof Error && err.name === 'TimeoutError';
}

/** A transient network code on the error or anywhere in its cause chain. */
function networkCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current !== null && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && TRANSIENT_NETWORK_CODES.has(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function connectionMessage(err: Error): string {
  const code = networkCode(err);
  return code === undefined
    ? `model connection failed: ${err.message}`
    : `model connection failed (${code}): ${err.message}`;
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return truncate(err.message || err.name, 1000);
  return truncate(typeof err === 'string' ? err : safeStringify(err), 1000);
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
