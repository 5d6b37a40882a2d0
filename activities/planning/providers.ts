/**
 * The language-model port of the planning and council pools: one interface, two adapters over the official SDKs.
 * - OpenAICompatibleModel: chat completions with tools, any OpenAI-compatible base URL (OpenAI, Ollama, vLLM,
 *   LM Studio, llama.cpp server).
 * - AnthropicModel: the Messages API with tools.
 * `createLanguageModel(config)` returns undefined for the `offline` provider: callers then use deterministic logic.
 * SDK retries are off: the activity's Temporal retry policy is the one retry loop (see model-errors.ts).
 * Each adapter's `complete` goes through this process's circuit breaker for its provider and base URL
 * (common/circuit-breaker.ts): while it is open, calls fail fast with CircuitOpenError, which model-errors.ts turns
 * into a retryable failure whose next retry waits out the cool-down.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { circuitBreakerFor, serviceOfUrl, type CircuitBreaker } from '../../common/circuit-breaker.js';
import { ConfigError, type Config } from '../../common/config.js';
import { computeCostUsd, type TokenPrice, type TokenUsage } from './model-budget.js';
import { classifyModelError, ModelOutputError, toActivityFailure } from './model-errors.js';

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
}

export interface ToolSpec {
  name: string;
  description: string;
  /** A JSON Schema object describing the tool's arguments. */
  parameters: Record<string, unknown>;
}

export interface ModelRequest {
  system: string;
  messages: ChatMessage[];
  tools?: ToolSpec[];
  /** `required` makes the model call one of the tools instead of answering in text. Default `auto`. */
  toolChoice?: 'auto' | 'required';
  maxTokens?: number;
  /** Ask for a single JSON object as the text answer. */
  json?: boolean;
}

export interface ToolCall {
  id: string;
  name: string;
  /** Parsed JSON arguments. */
  arguments: unknown;
}

/** Why the model stopped, normalised across providers. */
export type StopReason = 'end' | 'tool_use' | 'max_tokens' | 'refused' | 'other';

export interface ModelUsage extends TokenUsage {
  /** True when the server reported no usage and the counts are estimated from characters (about 4 per token). */
  estimated?: boolean;
}

export interface ModelResponse {
  text: string;
  toolCalls: ToolCall[];
  usage: ModelUsage;
  costUsd: number;
  stopReason: StopReason;
}

export interface LanguageModel {
  readonly provider: string;
  readonly model: string;
  complete(req: ModelRequest): Promise<ModelResponse>;
}

export interface ModelOptions {
  model: string;
  apiKey?: string;
  baseURL?: string;
  /** Per-request timeout in milliseconds. */
  timeoutMs: number;
  price: TokenPrice;
  /** The provider's circuit breaker (shared per provider and base URL in a process). Default: 5 failures, 30 s. */
  breaker?: { failureThreshold: number; coolDownMs: number };
}

export const DEFAULT_MODEL_BREAKER = { failureThreshold: 5, coolDownMs: 30_000 };

/**
 * The process's breaker for a provider at a base URL. Only the retryable failure classes (connection errors,
 * timeouts, 408/409/429/5xx) count: a 401 or a malformed answer means the service is up.
 */
export function modelBreaker(provider: string, baseURL: string, options = DEFAULT_MODEL_BREAKER): CircuitBreaker {
  return circuitBreakerFor(serviceOfUrl(provider, baseURL), {
    ...options,
    isFailure: (err) => classifyModelError(err).retryable,
    // A cancelled activity aborts its call: that says nothing about the provider.
    isNeutral: (err) => classifyModelError(err).type === 'ModelRequestAborted',
  });
}

const DEFAULT_MAX_TOKENS = 4096;
const JSON_INSTRUCTION = 'Respond with a single JSON object and nothing else.';

export interface OpenAICompatibleOptions extends ModelOptions {
  /**
   * The request field that limits output tokens. OpenAI's current models take `max_completion_tokens`; many local
   * servers only know `max_tokens`. Default: `max_completion_tokens` for api.openai.com, `max_tokens` elsewhere.
   */
  tokenLimitField?: 'max_tokens' | 'max_completion_tokens';
}

export class OpenAICompatibleModel implements LanguageModel {
  readonly provider = 'openai';
  readonly model: string;
  private readonly client: OpenAI;
  private readonly price: TokenPrice;
  private readonly tokenLimitField: 'max_tokens' | 'max_completion_tokens';
  private readonly breaker: CircuitBreaker;

  constructor(options: OpenAICompatibleOptions) {
    this.model = options.model;
    this.price = options.price;
    const official = options.baseURL === undefined || /^https:\/\/api\.openai\.com(\/|$)/.test(options.baseURL);
    this.tokenLimitField = options.tokenLimitField ?? (official ? 'max_completion_tokens' : 'max_tokens');
    this.client = new OpenAI({
      // Local servers ignore the key, but the client refuses to start without one.
      apiKey: options.apiKey ?? 'unused',
      baseURL: options.baseURL,
      timeout: options.timeoutMs,
      maxRetries: 0,
    });
    this.breaker = modelBreaker(this.provider, options.baseURL ?? 'https://api.openai.com/v1', options.breaker);
  }

  complete(req: ModelRequest): Promise<ModelResponse> {
    return this.breaker.run(() => this.call(req));
  }

  private async call(req: ModelRequest): Promise<ModelResponse> {
    const system = req.json ? withJsonInstruction(req.system) : req.system;
    const params: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming = {
      model: this.model,
      messages: [
        { role: 'system', content: system },
        ...req.messages.map((m) => ({ role: m.role, content: m.content })),
      ],
    };
    const maxTokens = req.maxTokens ?? DEFAULT_MAX_TOKENS;
    if (this.tokenLimitField === 'max_tokens') params.max_tokens = maxTokens;
    else params.max_completion_tokens = maxTokens;
    if (req.tools?.length) {
      params.tools = req.tools.map((t) => ({
        type: 'function' as const,
        function: { name: t.name, description: t.description, parameters: t.parameters },
      }));
      params.tool_choice = req.toolChoice ?? 'auto';
    }
    if (req.json) params.response_format = { type: 'json_object' };

    const completion = await this.client.chat.completions.create(params);

    const choice = completion.choices[0];
    const text = choice?.message.content ?? '';
    // Some local servers report no usage: estimate it rather than let the calls go uncounted.
    const usage: ModelUsage = completion.usage
      ? { inputTokens: count(completion.usage.prompt_tokens), outputTokens: count(completion.usage.completion_tokens) }
      : estimateUsage(params.messages, text, choice?.message.tool_calls ?? []);
    const costUsd = computeCostUsd(usage, this.price);
    if (!choice) {
      throw new ModelOutputError('the model returned no choices', { usage, costUsd, raw: JSON.stringify(completion) });
    }
    const toolCalls: ToolCall[] = [];
    for (const call of choice.message.tool_calls ?? []) {
      if (call.type !== 'function') continue;
      toolCalls.push({
        id: call.id,
        name: call.function.name,
        arguments: parseToolArguments(call.function.name, call.function.arguments, usage, costUsd),
      });
    }
    return { text, toolCalls, usage, costUsd, stopReason: openAIStopReason(choice.finish_reason) };
  }
}

export class AnthropicModel implements LanguageModel {
  readonly provider = 'anthropic';
  readonly model: string;
  private readonly client: Anthropic;
  private readonly price: TokenPrice;
  private readonly breaker: CircuitBreaker;

  constructor(options: ModelOptions) {
    this.model = options.model;
    this.price = options.price;
    this.client = new Anthropic({
      // Without a key the SDK resolves its own credentials (ANTHROPIC_API_KEY, profiles).
      ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
      // The SDK appends /v1/messages itself; accept a base URL written with or without /v1.
      baseURL: options.baseURL === undefined ? undefined : options.baseURL.replace(/\/v1\/?$/, ''),
      timeout: options.timeoutMs,
      maxRetries: 0,
    });
    this.breaker = modelBreaker(this.provider, options.baseURL ?? 'https://api.anthropic.com', options.breaker);
  }

  complete(req: ModelRequest): Promise<ModelResponse> {
    return this.breaker.run(() => this.call(req));
  }

  private async call(req: ModelRequest): Promise<ModelResponse> {
    const params: Anthropic.MessageCreateParamsNonStreaming = {
      model: this.model,
      max_tokens: req.maxTokens ?? DEFAULT_MAX_TOKENS,
      system: req.json ? withJsonInstruction(req.system) : req.system,
      messages: req.messages.map((m) => ({ role: m.role, content: m.content })),
    };
    if (req.tools?.length) {
      params.tools = req.tools.map((t) => ({
        name: t.name,
        description: t.description,
        input_schema: { ...t.parameters, type: 'object' as const },
      }));
      params.tool_choice = req.toolChoice === 'required' ? { type: 'any' } : { type: 'auto' };
    }

    const message = await this.client.messages.create(params);

    // Compatible servers may leave fields out. Cache writes and reads are counted as input at the input price:
    // dearer than the truth for reads, never cheaper.
    const u: Partial<Anthropic.Usage> = message.usage ?? {};
    const usage: ModelUsage = {
      inputTokens: count(u.input_tokens) + count(u.cache_creation_input_tokens) + count(u.cache_read_input_tokens),
      outputTokens: count(u.output_tokens),
    };
    const costUsd = computeCostUsd(usage, this.price);
    const texts: string[] = [];
    const toolCalls: ToolCall[] = [];
    for (const block of message.content) {
      if (block.type === 'text') texts.push(block.text);
      else if (block.type === 'tool_use') toolCalls.push({ id: block.id, name: block.name, arguments: block.input });
    }
    return { text: texts.join(''), toolCalls, usage, costUsd, stopReason: anthropicStopReason(message.stop_reason) };
  }
}

export type LanguageModelConfig = Pick<
  Config,
  | 'LLM_PROVIDER'
  | 'LLM_BASE_URL'
  | 'LLM_API_KEY'
  | 'LLM_MODEL'
  | 'LLM_TIMEOUT'
  | 'LLM_PRICE_PER_MTOK'
  | 'CIRCUIT_BREAKER_FAILURES'
  | 'CIRCUIT_BREAKER_COOLDOWN'
>;

/** The configured model, or undefined for the offline provider. Throws ConfigError when LLM_MODEL is missing. */
export function createLanguageModel(config: LanguageModelConfig): LanguageModel | undefined {
  if (config.LLM_PROVIDER === 'offline') return undefined;
  if (!config.LLM_MODEL) {
    throw new ConfigError([{ variable: 'LLM_MODEL', message: `required when LLM_PROVIDER is ${config.LLM_PROVIDER}` }]);
  }
  const options: ModelOptions = {
    model: config.LLM_MODEL,
    apiKey: config.LLM_API_KEY,
    baseURL: config.LLM_BASE_URL,
    timeoutMs: config.LLM_TIMEOUT,
    price: config.LLM_PRICE_PER_MTOK,
    breaker: { failureThreshold: config.CIRCUIT_BREAKER_FAILURES, coolDownMs: config.CIRCUIT_BREAKER_COOLDOWN },
  };
  if (config.LLM_PROVIDER === 'anthropic') return new AnthropicModel(options);
  if (!config.LLM_API_KEY && !config.LLM_BASE_URL) {
    throw new ConfigError([
      { variable: 'LLM_API_KEY', message: 'required for the OpenAI API (set LLM_BASE_URL for a local server)' },
    ]);
  }
  return new OpenAICompatibleModel(options);
}

/** A reported token count, or 0 when the server sent something else. */
function count(value: unknown): number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : 0;
}

function withJsonInstruction(system: string): string {
  return /json/i.test(system) ? system : `${system}\n\n${JSON_INSTRUCTION}`;
}

function parseToolArguments(name: string, raw: string, usage: TokenUsage, costUsd: number): unknown {
  if (raw.trim() === '') return {};
  try {
    return JSON.parse(raw) as unknown;
  } catch (err) {
    throw new ModelOutputError(`the model called ${name} with arguments that are not valid JSON`, {
      usage,
      costUsd,
      raw,
      cause: err,
    });
  }
}

function estimateUsage(
  messages: OpenAI.Chat.ChatCompletionMessageParam[],
  text: string,
  toolCalls: OpenAI.Chat.ChatCompletionMessageToolCall[],
): ModelUsage {
  const inputChars = messages.reduce((n, m) => n + (typeof m.content === 'string' ? m.content.length : 0), 0);
  const outputChars =
    text.length + toolCalls.reduce((n, c) => n + (c.type === 'function' ? c.function.arguments.length : 0), 0);
  return { inputTokens: Math.ceil(inputChars / 4), outputTokens: Math.ceil(outputChars / 4), estimated: true };
}

function openAIStopReason(reason: string | null | undefined): StopReason {
  switch (reason) {
    case 'stop':
      return 'end';
    case 'tool_calls':
    case 'function_call':
      return 'tool_use';
    case 'length':
      return 'max_tokens';
    case 'content_filter':
      return 'refused';
    default:
      return 'other';
  }
}

function anthropicStopReason(reason: string | null | undefined): StopReason {
  switch (reason) {
    case 'end_turn':
    case 'stop_sequence':
      return 'end';
    case 'tool_use':
      return 'tool_use';
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'max_tokens';
    case 'refusal':
      return 'refused';
    default:
      return 'other';
  }
}

/**
 * The model an activity uses: `override` when one is given (null: none), else the configured one. A ConfigError
 * (LLM_MODEL missing, say) becomes a non-retryable failure naming the variable.
 */
export function activityLanguageModel(
  config: LanguageModelConfig,
  override?: LanguageModel | null,
): LanguageModel | undefined {
  if (override !== undefined) return override ?? undefined;
  try {
    return createLanguageModel(config);
  } catch (err) {
    throw toActivityFailure(err);
  }
}
