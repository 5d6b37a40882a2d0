/**
 * A scripted language-model server for tests: speaks enough of the OpenAI chat-completions and Anthropic Messages
 * HTTP APIs for the real SDK clients, on 127.0.0.1 and a port the OS picks. Each request is recorded (with the time it
 * arrived) and answered by the responder, when one is set and returns a reply, else by the next scripted reply,
 * whatever its route. A request with no reply gets a 500 that names the request, so a test that makes an unexpected
 * call fails loudly. A responder picks the reply from the request's content, for callers whose order is not fixed
 * (judges run in parallel): see `chatRequestOf`.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ScriptedReply {
  status: number;
  headers?: Record<string, string>;
  /** JSON-encoded unless a string. Omitted: an error body for error statuses, `{}` otherwise. */
  body?: unknown;
  /** Wait this long before answering (to exercise client timeouts). */
  delayMs?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, or the raw text when it is not JSON. */
  body: unknown;
  /** When the request's body had arrived (Date.now()). */
  receivedAt: number;
  /** The status the server answered with. */
  status?: number;
}

/** Picks the reply for a request (`index` counts from 0); undefined falls back to the scripted queue. */
export type Responder = (request: RecordedRequest, index: number) => ScriptedReply | undefined;

export interface ScriptedLlm {
  /** Base URL ending in /v1 (for the OpenAI client; the Anthropic adapter accepts it too). */
  url: string;
  /** Scheme, host and port without a path (for a raw Anthropic client, which appends /v1/messages itself). */
  origin: string;
  requests: RecordedRequest[];
  push(...replies: ScriptedReply[]): void;
  /** Sets (or, with undefined, removes) the responder consulted before the scripted queue. */
  respond(responder: Responder | undefined): void;
  /** Scripted replies not yet used. */
  pending(): number;
  close(): Promise<void>;
}

export interface UsageCounts {
  inputTokens: number;
  outputTokens: number;
}

const DEFAULT_USAGE: UsageCounts = { inputTokens: 10, outputTokens: 5 };
let sequence = 0;

export async function startScriptedLlm(script: ScriptedReply[] | Responder = []): Promise<ScriptedLlm> {
  const queue = typeof script === 'function' ? [] : [...script];
  let responder = typeof script === 'function' ? script : undefined;
  const requests: RecordedRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = text === '' ? undefined : (JSON.parse(text) as unknown);
      } catch {
        // keep the raw text
      }
      const path = req.url ?? '/';
      const recorded: RecordedRequest = {
        method: req.method ?? 'GET',
        path,
        headers: req.headers,
        body,
        receivedAt: Date.now(),
      };
      requests.push(recorded);
      let reply: ScriptedReply | undefined;
      try {
        reply = responder?.(recorded, requests.length - 1);
      } catch (err) {
        reply = {
          status: 500,
          body: errorBody(`scripted-llm: the responder threw: ${String(err)}`, 'responder_error'),
        };
      }
      reply ??= queue.shift() ?? {
        status: 500,
        body: errorBody(
          `scripted-llm: no reply scripted for request #${requests.length} (${req.method} ${path})`,
          'scripted_llm_exhausted',
        ),
      };
      recorded.status = reply.status;
      if (reply.delayMs) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          send(res, reply);
        }, reply.delayMs);
        timers.add(timer);
      } else {
        send(res, reply);
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;

  return {
    url: `${origin}/v1`,
    origin,
    requests,
    push: (...replies) => void queue.push(...replies),
    respond: (fn) => void (responder = fn),
    pending: () => queue.length,
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, reply: ScriptedReply): void {
  if (res.destroyed) return;
  const body =
    reply.body === undefined
      ? reply.status >= 400
        ? errorBody(`scripted error ${reply.status}`, 'scripted_error')
        : {}
      : reply.body;
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
  res.end(payload);
}

/** The parts of an OpenAI chat-completions request a responder usually needs. */
export interface ChatRequestView {
  system: string;
  /** The user messages, joined by blank lines. */
  user: string;
  /** Names of the tools offered. */
  tools: string[];
  model: string | undefined;
}

/** Reads an OpenAI chat-completions request body (other bodies give empty fields). */
export function chatRequestOf(request: Pick<RecordedRequest, 'body'>): ChatRequestView {
  const body = (request.body !== null && typeof request.body === 'object' ? request.body : {}) as {
    model?: unknown;
    messages?: { role?: unknown; content?: unknown }[];
    tools?: { function?: { name?: unknown } }[];
  };
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const text = (role: string) =>
    messages
      .filter((m) => m.role === role && typeof m.content === 'string')
      .map((m) => m.content as string)
      .join('\n\n');
  return {
    system: text('system'),
    user: text('user'),
    tools: (Array.isArray(body.tools) ? body.tools : []).flatMap((t) =>
      typeof t.function?.name === 'string' ? [t.function.name] : [],
    ),
    model: typeof body.model === 'string' ? body.model : undefined,
  };
}

/** An error body both SDKs read a message from. */
export function errorBody(message: string, type = 'error'): unknown {
  return { type: 'error', error: { message, type, code: null } };
}

/** An error reply: `errorReply(429, { 'retry-after': '1' })`. */
export function errorReply(status: number, headers: Record<string, string> = {}, message?: string): ScriptedReply {
  return { status, headers, body: errorBody(message ?? `scripted error ${status}`, `http_${status}`) };
}

function openAIUsage(usage: UsageCounts) {
  return {
    prompt_tokens: usage.inputTokens,
    completion_tokens: usage.outputTokens,
    total_tokens: usage.inputTokens + usage.outputTokens,
  };
}

function completion(message: Record<string, unknown>, finishReason: string, usage: UsageCounts | null) {
  return {
    id: `chatcmpl-${++sequence}`,
    object: 'chat.completion',
    created: 1_700_000_000,
    model: 'scripted-model',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', refusal: null, ...message },
        finish_reason: finishReason,
        logprobs: null,
      },
    ],
    ...(usage === null ? {} : { usage: openAIUsage(usage) }),
  };
}

/** A chat.completion with a text answer. `usage: null` leaves usage out, as some local servers do. */
export function textReply(text: string, usage: UsageCounts | null = DEFAULT_USAGE): ScriptedReply {
  return { status: 200, body: completion({ content: text }, 'stop', usage) };
}

/** A chat.completion that calls one tool. A string `args` is sent verbatim (to script malformed arguments). */
export function toolCallReply(name: string, args: unknown, usage: UsageCounts | null = DEFAULT_USAGE): ScriptedReply {
  const call = {
    id: `call_${++sequence}`,
    type: 'function',
    function: { name, arguments: typeof args === 'string' ? args : JSON.stringify(args) },
  };
  return { status: 200, body: completion({ content: null, tool_calls: [call] }, 'tool_calls', usage) };
}

function anthropicMessage(content: unknown[], stopReason: string, usage: UsageCounts) {
  return {
    id: `msg_${++sequence}`,
    type: 'message',
    role: 'assistant',
    model: 'scripted-model',
    content,
    stop_reason: stopReason,
    stop_sequence: null,
    usage: { input_tokens: usage.inputTokens, output_tokens: usage.outputTokens },
  };
}

/** An Anthropic Messages response with a text answer. */
export function anthropicText(text: string, usage: UsageCounts = DEFAULT_USAGE): ScriptedReply {
  return { status: 200, body: anthropicMessage([{ type: 'text', text }], 'end_turn', usage) };
}

/** An Anthropic Messages response that calls one tool. */
export function anthropicToolUse(name: string, input: unknown, usage: UsageCounts = DEFAULT_USAGE): ScriptedReply {
  return {
    status: 200,
    body: anthropicMessage([{ type: 'tool_use', id: `toolu_${++sequence}`, name, input }], 'tool_use', usage),
  };
}
