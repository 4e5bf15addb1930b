// The official openai npm SDK, unmodified, against the real meridian binary
// with anthropic-, gemini- and azure-kind providers on the C mock upstream
// (which speaks those dialects): plain chat, text streams, tool_calls rebuilt
// by the SDK's own stream helper from a streamed Anthropic / Gemini answer,
// a tool round trip, and an error raised mid-stream. Run by CTest through
// `node --test` (tests/sdk/run dialects.test.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startAndWait, stopAll } from './procs.mjs';

const MERIDIAN = process.env.MERIDIAN_BIN;
const MOCK = process.env.MOCK_BIN;
const CLIENT_KEY = 'sk-client-key-must-not-be-forwarded';
let dir, mockPort, client;

async function mock(path, body) {
  const r = await fetch(`http://127.0.0.1:${mockPort}/_mock/${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return r.json();
}

const KINDS = [
  { name: 'anthropic', model: 'claude/claude-test', auth: 'x-api-key', key: 'sk-ant-sdk' },
  { name: 'gemini', model: 'gem/gemini-test', auth: 'x-goog-api-key', key: 'goog-sdk' },
  { name: 'azure', model: 'az/az-deployment', auth: 'api-key', key: 'az-sdk', noTools: true },
];

const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, days: { type: 'integer' } },
      required: ['city'],
    },
  },
}];

before(async () => {
  assert.ok(MERIDIAN && MOCK, 'MERIDIAN_BIN and MOCK_BIN must be set');
  dir = mkdtempSync(join(tmpdir(), 'meridian-sdk-dialects-'));
  mockPort = await startAndWait(MOCK, ['--name', 'x']);
  const cfg = {
    listen: '127.0.0.1:0',
    providers: {
      claude: { kind: 'anthropic', base_url: `http://127.0.0.1:${mockPort}/v1`, api_key: 'sk-ant-sdk' },
      gem: { kind: 'gemini', base_url: `http://127.0.0.1:${mockPort}/v1beta`, api_key: 'goog-sdk' },
      az: { kind: 'azure', base_url: `http://127.0.0.1:${mockPort}`, api_key: 'az-sdk' },
    },
    routes: {
      chat: { targets: [{ provider: 'claude', model: 'claude-test' }] },
    },
  };
  writeFileSync(join(dir, 'meridian.json'), JSON.stringify(cfg));
  const port = await startAndWait(MERIDIAN, ['--config', join(dir, 'meridian.json'), '--listen', '127.0.0.1:0']);
  client = new OpenAI({ apiKey: CLIENT_KEY, baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0, timeout: 20000 });
});

after(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await stopAll(); // a daemon that exits badly or reports a sanitizer error fails the suite
});

for (const k of KINDS) {
  test(`${k.name}: plain chat in OpenAI shape, provider key upstream`, async () => {
    await mock('reset', {});
    const { data, response } = await client.chat.completions
      .create({ model: k.model, messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.choices[0].message.content, 'Hello from x');
    assert.equal(data.choices[0].finish_reason, 'stop');
    assert.deepEqual(
      [data.usage.prompt_tokens, data.usage.completion_tokens, data.usage.total_tokens], [5, 4, 9]);
    assert.match(response.headers.get('x-meridian-provider'), /^(claude|gem|az)$/);
    const seen = await mock('requests');
    assert.equal(seen.length, 1);
    assert.equal(seen[0].headers[k.auth], k.key);
    assert.equal(seen[0].headers.authorization, undefined);
    assert.ok(!JSON.stringify(seen).includes(CLIENT_KEY), 'client key reached the upstream');
  });

  test(`${k.name}: streamed text and usage`, async () => {
    await mock('reset', {});
    const stream = await client.chat.completions.create({
      model: k.model, stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'hi' }],
    });
    let text = '';
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    assert.equal(text, 'tok0 tok1 tok2 tok3 tok4 ');
    assert.equal(finish, 'stop');
    assert.equal(usage.prompt_tokens, 5);
    assert.equal(usage.completion_tokens, 4);
  });

  if (k.noTools) continue;

  test(`${k.name}: the SDK's stream helper rebuilds tool_calls from a streamed answer`, async () => {
    await mock('reset', {});
    const runner = client.chat.completions.stream({
      model: k.model, tools, messages: [{ role: 'user', content: 'Weather in Paris?' }],
    });
    const deltas = [];
    runner.on('tool_calls.function.arguments.delta', (e) => deltas.push(e.arguments_delta));
    const final = await runner.finalChatCompletion();
    const choice = final.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.match(call.id, /\S+/);
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'mock', days: 1 });
    if (k.name === 'anthropic') assert.ok(deltas.length > 1, 'arguments should arrive in pieces');

    // round trip: the tool's result goes back and the model answers with it
    const answer = await client.chat.completions.create({
      model: k.model, tools,
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        choice.message,
        { role: 'tool', tool_call_id: call.id, content: '18C and sunny' },
      ],
    });
    assert.match(answer.choices[0].message.content, /tool result: .*18C and sunny/);
    assert.equal(answer.choices[0].finish_reason, 'stop');
  });

  test(`${k.name}: non-stream tool_calls`, async () => {
    await mock('reset', {});
    const r = await client.chat.completions.create({
      model: k.model, tools, tool_choice: 'required', messages: [{ role: 'user', content: 'Weather?' }],
    });
    const call = r.choices[0].message.tool_calls[0];
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'mock', days: 1 });
  });
}

test('an upstream error event mid-stream surfaces as an SDK error', async () => {
  for (const k of KINDS.filter((x) => !x.noTools)) {
    await mock('reset', {});
    await mock('scenario', { error_after_chunks: 2, chunk_delay_ms: 100, count: 1 });
    const stream = await client.chat.completions.create({
      model: k.model, stream: true, messages: [{ role: 'user', content: 'hi' }],
    });
    let text = '';
    await assert.rejects(async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    }, (err) => err instanceof OpenAI.APIError && /overloaded/i.test(err.message), k.name);
    assert.equal(text, 'tok0 tok1 ', k.name);
  }
});

test('a 400 from an anthropic upstream is a BadRequestError with the provider message', async () => {
  await mock('reset', {});
  await mock('scenario', { status: 400, count: 1 });
  await assert.rejects(
    client.chat.completions.create({ model: 'claude/claude-test', messages: [{ role: 'user', content: 'x' }] }),
    (err) => err instanceof OpenAI.BadRequestError && /mock x status 400/.test(err.message));
});
