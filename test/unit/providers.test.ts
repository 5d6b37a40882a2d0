/**
 * The language-model adapters through the real openai and @anthropic-ai/sdk clients against a scripted HTTP server:
 * responses, usage and cost, tool calls, malformed output, and how each failure is classified for Temporal's retry.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../common/config.js';
import {
  judgeWithModel,
  judgeWithModelMetered,
  parseJsonObject,
  planWithModel,
} from '../../activities/planning/llm-planner.js';
import {
  classifyModelError,
  ModelOutputError,
  retryAfterFromHeaders,
  toActivityFailure,
} from '../../activities/planning/model-errors.js';
import {
  AnthropicModel,
  createLanguageModel,
  OpenAICompatibleModel,
  type LanguageModel,
  type ModelRequest,
} from '../../activities/planning/providers.js';
import { freePort } from '../helpers/ports.js';
import {
  anthropicText,
  anthropicToolUse,
  errorReply,
  startScriptedLlm,
  textReply,
  toolCallReply,
  type ScriptedLlm,
} from '../helpers/scripted-llm.js';

const PRICE = { input: 3, output: 15 };
const REQUEST: ModelRequest = { system: 'You are terse.', messages: [{ role: 'user', content: 'Say hello.' }] };
const TOOL = {
  name: 'submit_answer',
  description: 'Submit the answer.',
  parameters: { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] },
};

let llm: ScriptedLlm;

beforeEach(async () => {
  llm = await startScriptedLlm();
});

afterEach(async () => {
  await llm.close();
});

function openai(
  overrides: Partial<ConstructorParameters<typeof OpenAICompatibleModel>[0]> = {},
): OpenAICompatibleModel {
  return new OpenAICompatibleModel({
    model: 'scripted-model',
    apiKey: 'test-key',
    baseURL: llm.url,
    timeoutMs: 5_000,
    price: PRICE,
    ...overrides,
  });
}

function anthropic(): AnthropicModel {
  return new AnthropicModel({
    model: 'scripted-model',
    apiKey: 'test-key',
    baseURL: llm.url,
    timeoutMs: 5_000,
    price: PRICE,
  });
}

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

describe('OpenAICompatibleModel', () => {
  it('when the server answers with text, then the text, usage and cost are returned', async () => {
    llm.push(textReply('hello', { inputTokens: 1000, outputTokens: 500 }));

    const response = await openai().complete(REQUEST);

    expect(response.text).toBe('hello');
    expect(response.toolCalls).toEqual([]);
    expect(response.usage).toEqual({ inputTokens: 1000, outputTokens: 500 });
    expect(response.costUsd).toBeCloseTo((1000 * 3 + 500 * 15) / 1e6, 12);
    expect(response.stopReason).toBe('end');
    expect(llm.requests).toHaveLength(1);
    const [request] = llm.requests;
    expect(request?.path).toBe('/v1/chat/completions');
    expect(request?.headers.authorization).toBe('Bearer test-key');
    expect(request?.body).toMatchObject({
      model: 'scripted-model',
      max_tokens: 4096,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Say hello.' },
      ],
    });
  });

  it('when the model calls a tool, then the call and its parsed arguments are returned', async () => {
    llm.push(toolCallReply('submit_answer', { answer: 42 }));

    const response = await openai().complete({ ...REQUEST, tools: [TOOL], toolChoice: 'required' });

    expect(response.toolCalls).toEqual([
      { id: expect.any(String) as string, name: 'submit_answer', arguments: { answer: 42 } },
    ]);
    expect(response.stopReason).toBe('tool_use');
    expect(llm.requests[0]?.body).toMatchObject({
      tool_choice: 'required',
      tools: [{ type: 'function', function: { name: 'submit_answer', parameters: TOOL.parameters } }],
    });
  });

  it('when the tool-call arguments are not valid JSON, then a ModelOutputError carries the usage', async () => {
    llm.push(toolCallReply('submit_answer', '{"answer": 4', { inputTokens: 20, outputTokens: 7 }));

    const err = await failureOf(openai().complete({ ...REQUEST, tools: [TOOL] }));

    expect(err).toBeInstanceOf(ModelOutputError);
    expect((err as ModelOutputError).usage).toEqual({ inputTokens: 20, outputTokens: 7 });
    expect((err as ModelOutputError).raw).toBe('{"answer": 4');
    expect(classifyModelError(err)).toMatchObject({ retryable: false, type: 'ModelOutputError' });
  });

  it('when json is requested, then response_format is json_object and the system prompt mentions JSON', async () => {
    llm.push(textReply('{"ok":true}'));

    await openai().complete({ ...REQUEST, json: true });

    const body = llm.requests[0]?.body as { response_format: unknown; messages: { content: string }[] };
    expect(body.response_format).toEqual({ type: 'json_object' });
    expect(body.messages[0]?.content).toMatch(/JSON/);
  });

  it('when the server reports no usage, then usage is estimated and flagged', async () => {
    llm.push(textReply('a'.repeat(40), null));

    const response = await openai().complete(REQUEST);

    expect(response.usage.estimated).toBe(true);
    expect(response.usage.outputTokens).toBe(10);
    expect(response.usage.inputTokens).toBeGreaterThan(0);
  });

  it('when the official token-limit field is chosen, then the limit is sent as max_completion_tokens', async () => {
    llm.push(textReply('ok'));

    await openai({ tokenLimitField: 'max_completion_tokens' }).complete({ ...REQUEST, maxTokens: 100 });

    expect(llm.requests[0]?.body).toMatchObject({ max_completion_tokens: 100 });
    expect(llm.requests[0]?.body).not.toHaveProperty('max_tokens');
  });

  it('when the server answers 429 with retry-after, then the failure is retryable after that delay', async () => {
    llm.push(errorReply(429, { 'retry-after': '1' }, 'slow down'));

    const err = await failureOf(openai().complete(REQUEST));

    expect(classifyModelError(err)).toMatchObject({
      retryable: true,
      retryAfterMs: 1000,
      status: 429,
      type: 'ModelRateLimited',
    });
    const failure = toActivityFailure(err);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure.nonRetryable).toBe(false);
    expect(failure.nextRetryDelay).toBe(1000);
    expect(failure.type).toBe('ModelRateLimited');
    expect(llm.requests).toHaveLength(1);
  });

  it('when the server answers 401, then the failure is non-retryable and only one request was made', async () => {
    llm.push(errorReply(401, {}, 'bad key'), textReply('should never be used'));

    const err = await failureOf(openai().complete(REQUEST));

    expect(classifyModelError(err)).toMatchObject({ retryable: false, status: 401, type: 'ModelAuthenticationFailed' });
    expect(toActivityFailure(err).nonRetryable).toBe(true);
    expect(llm.requests).toHaveLength(1);
    expect(llm.pending()).toBe(1);
  });

  it('when the server answers 500, then the failure is retryable and the SDK did not retry it', async () => {
    llm.push(errorReply(500), textReply('should never be used'));

    const err = await failureOf(openai().complete(REQUEST));

    expect(classifyModelError(err)).toMatchObject({ retryable: true, status: 500, type: 'ModelServerError' });
    expect(toActivityFailure(err).nonRetryable).toBe(false);
    expect(llm.requests).toHaveLength(1);
  });

  it.each([400, 403, 404, 422])('when the server answers %i, then the failure is non-retryable', async (status) => {
    llm.push(errorReply(status));

    const err = await failureOf(openai().complete(REQUEST));

    expect(classifyModelError(err)).toMatchObject({ retryable: false, status });
  });

  it.each([408, 409, 503])('when the server answers %i, then the failure is retryable', async (status) => {
    llm.push(errorReply(status));

    const err = await failureOf(openai().complete(REQUEST));

    expect(classifyModelError(err)).toMatchObject({ retryable: true, status });
  });

  it('when nothing listens on the port, then the connection failure is retryable', async () => {
    const port = await freePort();
    const model = new OpenAICompatibleModel({
      model: 'm',
      apiKey: 'k',
      baseURL: `http://127.0.0.1:${port}/v1`,
      timeoutMs: 5_000,
      price: PRICE,
    });

    const err = await failureOf(model.complete(REQUEST));

    expect(classifyModelError(err)).toMatchObject({ retryable: true, type: 'ModelConnectionError' });
    expect(classifyModelError(err).status).toBeUndefined();
    expect(toActivityFailure(err).nonRetryable).toBe(false);
  });

  it('when the server is slower than the timeout, then the failure is a retryable timeout', async () => {
    llm.push({ ...textReply('late'), delayMs: 2_000 });

    const err = await failureOf(openai({ timeoutMs: 200 }).complete(REQUEST));

    expect(classifyModelError(err)).toMatchObject({ retryable: true, type: 'ModelTimeout' });
    expect(llm.requests).toHaveLength(1);
  });

  it('when a request is not scripted, then the server answers 500 naming the request', async () => {
    const err = await failureOf(openai().complete(REQUEST));

    expect(classifyModelError(err).message).toMatch(
      /no reply scripted for request #1 \(POST \/v1\/chat\/completions\)/,
    );
  });
});

describe('AnthropicModel', () => {
  it('when the server answers with text, then the text, usage and cost are returned', async () => {
    llm.push(anthropicText('hello', { inputTokens: 2000, outputTokens: 100 }));

    const response = await anthropic().complete(REQUEST);

    expect(response).toMatchObject({ text: 'hello', toolCalls: [], stopReason: 'end' });
    expect(response.usage).toEqual({ inputTokens: 2000, outputTokens: 100 });
    expect(response.costUsd).toBeCloseTo((2000 * 3 + 100 * 15) / 1e6, 12);
    const [request] = llm.requests;
    expect(request?.path).toBe('/v1/messages');
    // This SDK version sends the key as a bearer token; older ones used x-api-key.
    expect(request?.headers['x-api-key'] ?? request?.headers.authorization).toMatch(/^(Bearer )?test-key$/);
    expect(request?.body).toMatchObject({
      model: 'scripted-model',
      system: 'You are terse.',
      max_tokens: 4096,
      messages: [{ role: 'user', content: 'Say hello.' }],
    });
  });

  it('when the model uses a tool, then the call and its input are returned', async () => {
    llm.push(anthropicToolUse('submit_answer', { answer: 'yes' }));

    const response = await anthropic().complete({ ...REQUEST, tools: [TOOL], toolChoice: 'required' });

    expect(response.toolCalls).toEqual([
      { id: expect.any(String) as string, name: 'submit_answer', arguments: { answer: 'yes' } },
    ]);
    expect(response.stopReason).toBe('tool_use');
    expect(llm.requests[0]?.body).toMatchObject({
      tool_choice: { type: 'any' },
      tools: [{ name: 'submit_answer', input_schema: { type: 'object', required: ['answer'] } }],
    });
  });

  it('when the server answers 429 with retry-after-ms, then the failure is retryable after that delay', async () => {
    llm.push(errorReply(429, { 'retry-after-ms': '250' }));

    const err = await failureOf(anthropic().complete(REQUEST));

    expect(classifyModelError(err)).toMatchObject({ retryable: true, retryAfterMs: 250, status: 429 });
    expect(toActivityFailure(err).nextRetryDelay).toBe(250);
    expect(llm.requests).toHaveLength(1);
  });

  it('when the server answers 529 overloaded, then the failure is retryable', async () => {
    llm.push(errorReply(529));

    const err = await failureOf(anthropic().complete(REQUEST));

    expect(classifyModelError(err)).toMatchObject({ retryable: true, status: 529, type: 'ModelServerError' });
  });

  it('when the server answers 401, then the failure is non-retryable and only one request was made', async () => {
    llm.push(errorReply(401), anthropicText('should never be used'));

    const err = await failureOf(anthropic().complete(REQUEST));

    expect(classifyModelError(err)).toMatchObject({ retryable: false, status: 401 });
    expect(llm.requests).toHaveLength(1);
  });
});

describe('createLanguageModel', () => {
  function config(env: Record<string, string>) {
    return loadConfig({ LLM_PRICE_PER_MTOK: '3,15', LLM_TIMEOUT: '5s', ...env });
  }

  it('when the provider is offline, then there is no model', () => {
    expect(createLanguageModel(config({ LLM_PROVIDER: 'offline' }))).toBeUndefined();
  });

  it('when a provider is set without LLM_MODEL, then a ConfigError names LLM_MODEL', () => {
    expect(() => createLanguageModel(config({ LLM_PROVIDER: 'openai', LLM_BASE_URL: llm.url }))).toThrow(ConfigError);
    expect(() => createLanguageModel(config({ LLM_PROVIDER: 'anthropic' }))).toThrow(/LLM_MODEL/);
  });

  it('when openai is configured without a key or base URL, then a ConfigError names LLM_API_KEY', () => {
    expect(() => createLanguageModel(config({ LLM_PROVIDER: 'openai', LLM_MODEL: 'gpt' }))).toThrow(/LLM_API_KEY/);
  });

  it('when openai points at a local server, then calls go there and cost uses the configured price', async () => {
    const model = createLanguageModel(config({ LLM_PROVIDER: 'openai', LLM_BASE_URL: llm.url, LLM_MODEL: 'llama3' }));
    llm.push(textReply('hi', { inputTokens: 1_000_000, outputTokens: 0 }));

    const response = await model?.complete(REQUEST);

    expect(model).toBeInstanceOf(OpenAICompatibleModel);
    expect(model?.model).toBe('llama3');
    expect(response?.costUsd).toBe(3);
    expect(llm.requests[0]?.body).toMatchObject({ model: 'llama3' });
  });

  it('when anthropic is configured, then the Anthropic adapter calls the base URL', async () => {
    const model = createLanguageModel(
      config({ LLM_PROVIDER: 'anthropic', LLM_BASE_URL: llm.origin, LLM_MODEL: 'claude', LLM_API_KEY: 'k' }),
    );
    llm.push(anthropicText('hi'));

    await model?.complete(REQUEST);

    expect(model).toBeInstanceOf(AnthropicModel);
    expect(llm.requests[0]?.path).toBe('/v1/messages');
  });
});

describe('model-errors', () => {
  const NOW = Date.parse('2030-01-01T00:00:00Z');

  it('when retry-after is an HTTP date, then the delay is the time until that date', () => {
    const headers = new Headers({ 'retry-after': new Date(NOW + 30_000).toUTCString() });
    expect(retryAfterFromHeaders(headers, NOW)).toBe(30_000);
  });

  it('when retry-after is a date in the past, then the delay is zero', () => {
    expect(retryAfterFromHeaders({ 'Retry-After': new Date(NOW - 5_000).toUTCString() }, NOW)).toBe(0);
  });

  it('when both headers are present, then retry-after-ms wins', () => {
    expect(retryAfterFromHeaders(new Headers({ 'retry-after': '10', 'retry-after-ms': '1500' }), NOW)).toBe(1500);
  });

  it('when retry-after is not parseable, then there is no delay', () => {
    expect(retryAfterFromHeaders({ 'retry-after': 'soon' }, NOW)).toBeUndefined();
    expect(retryAfterFromHeaders(undefined, NOW)).toBeUndefined();
  });

  it('when a network error code is in the cause chain, then it is retryable', () => {
    const err = new TypeError('fetch failed', { cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) });
    expect(classifyModelError(err)).toMatchObject({ retryable: true, type: 'ModelConnectionError' });
  });

  it('when the error is a plain bug, then it is not retried', () => {
    expect(classifyModelError(new TypeError('x is undefined'))).toMatchObject({
      retryable: false,
      type: 'ModelClientError',
    });
  });

  it('when the error is already an ApplicationFailure, then toActivityFailure passes it through', () => {
    const failure = ApplicationFailure.nonRetryable('no', 'Custom');
    expect(toActivityFailure(failure)).toBe(failure);
  });

  it('when a non-retryable status carries retry-after, then no retry delay is set', () => {
    const err = Object.assign(new Error('forbidden'), { status: 403, headers: new Headers({ 'retry-after': '5' }) });
    const failure = toActivityFailure(err);
    expect(failure.nonRetryable).toBe(true);
    expect(failure.nextRetryDelay ?? undefined).toBeUndefined();
  });
});

describe('planWithModel and judgeWithModel', () => {
  const SPEC = {
    id: 'FEAT-0001',
    title: 'Add a greeting module',
    risk_tier: 3,
    mode: 'feature',
    scope: { in: ['src/'] },
    acceptance: [{ id: 'A1', given: 'the module', when: 'called', then: 'it greets' }],
    steps: [{ kind: 'write_file', path: 'src/greet.ts', content: 'export const greet = () => "hi";\n' }],
    gates: [{ name: 'tests', run: ['npm', 'test'] }],
  };
  const INPUT = {
    title: 'Add a greeting',
    description: 'Add src/greet.ts exporting greet().',
    repoSummary: 'package.json\nsrc/index.ts',
  };

  function model(): LanguageModel {
    return openai();
  }

  it('when the model calls submit_spec, then the raw spec, usage and cost are returned', async () => {
    llm.push(toolCallReply('submit_spec', SPEC, { inputTokens: 300, outputTokens: 200 }));

    const result = await planWithModel(model(), INPUT);

    expect(result.spec).toEqual(SPEC);
    expect(result.usage).toEqual({ inputTokens: 300, outputTokens: 200 });
    expect(result.costUsd).toBeCloseTo((300 * 3 + 200 * 15) / 1e6, 12);
    const body = llm.requests[0]?.body as { tools: { function: { name: string } }[]; messages: { content: string }[] };
    expect(body.tools[0]?.function.name).toBe('submit_spec');
    expect(body.messages[1]?.content).toContain('src/index.ts');
  });

  it('when json mode is used and the model answers in a fenced block, then the spec is parsed from the text', async () => {
    llm.push(textReply(`Here is the plan:\n\`\`\`json\n${JSON.stringify(SPEC)}\n\`\`\``));

    const result = await planWithModel(model(), INPUT, { mode: 'json' });

    expect(result.spec).toEqual(SPEC);
    expect(llm.requests[0]?.body).toMatchObject({ response_format: { type: 'json_object' } });
  });

  it('when the model gives no spec at all, then a ModelOutputError carries the usage', async () => {
    llm.push(textReply('I cannot help with that.', { inputTokens: 50, outputTokens: 8 }));

    const err = await failureOf(planWithModel(model(), INPUT));

    expect(err).toBeInstanceOf(ModelOutputError);
    expect((err as ModelOutputError).usage).toEqual({ inputTokens: 50, outputTokens: 8 });
  });

  it('when a judge answers through submit_verdict, then the raw verdict is returned', async () => {
    const verdict = { verdict: 'pass', score: 0.9, reasons: ['small change'], violations: [] };
    llm.push(toolCallReply('submit_verdict', verdict));

    await expect(judgeWithModel(model(), 'technical', { diff: '+1 line' })).resolves.toEqual(verdict);
    const body = llm.requests[0]?.body as { messages: { content: string }[] };
    expect(body.messages[0]?.content).toMatch(/technical judge/);
  });

  it('when a judge answers with malformed tool arguments, then the verdict is null and the usage is still reported', async () => {
    llm.push(toolCallReply('submit_verdict', '{not json', { inputTokens: 40, outputTokens: 4 }));

    const result = await judgeWithModelMetered(model(), 'quality', 'summary');

    expect(result.verdict).toBeNull();
    expect(result.usage).toEqual({ inputTokens: 40, outputTokens: 4 });
  });

  it('when a judge call is rate limited, then the API error propagates for the activity to retry', async () => {
    llm.push(errorReply(429, { 'retry-after': '2' }));

    const err = await failureOf(judgeWithModel(model(), 'integration', 'summary'));

    expect(classifyModelError(err)).toMatchObject({ retryable: true, retryAfterMs: 2000 });
  });

  it('when text wraps a JSON object in prose, then parseJsonObject finds it; otherwise undefined', () => {
    expect(parseJsonObject('Sure! {"a": 1} Hope that helps.')).toEqual({ a: 1 });
    expect(parseJsonObject('[1, 2]')).toBeUndefined();
    expect(parseJsonObject('no json here')).toBeUndefined();
  });
});
