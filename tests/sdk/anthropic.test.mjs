// The official @anthropic-ai/sdk npm package, unmodified, against the real
// meridian binary's POST /v1/messages and /v1/messages/count_tokens with
// the C mock upstream behind it: messages.create, messages.stream (final
// message and event order), a tool-use loop, countTokens and the SDK's
// error classes — each through an Anthropic target (byte passthrough) and
// an OpenAI-compatible one (translated) — plus failover from a 500ing
// target. Run by CTest through `node --test` (tests/sdk/run anthropic.test.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { startAndWait, stopAll } from './procs.mjs';

const MERIDIAN = process.env.MERIDIAN_BIN;
const MOCK = process.env.MOCK_BIN;
const GATEWAY_KEY = 'mk-sdk-anthropic-5d1e9b27c4a8';
let dir, mockA, mockB, base, client;

async function mock(port, path, body) {
  const r = await fetch(`http://127.0.0.1:${port}/_mock/${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return r.json();
}

async function reset() {
  await mock(mockA, 'reset', {});
  await mock(mockB, 'reset', {});
  await mock(mockB, 'scenario', { status: 500 }); // b always fails
}

// The route an alias names (claude-sonnet-* -> claude) and a translated one.
const TARGETS = [
  { name: 'anthropic', model: 'claude-sonnet-mock-20990101', upstream: 'claude-up', provider: 'ant',
    path: '/v1/messages' },
  { name: 'openai', model: 'gpt', upstream: 'gpt-up', provider: 'oai', path: '/v1/chat/completions' },
];

const tools = [{
  name: 'get_weather',
  description: 'Current weather for a city',
  input_schema: {
    type: 'object',
    properties: { city: { type: 'string' }, days: { type: 'integer' } },
    required: ['city'],
  },
}];

before(async () => {
  assert.ok(MERIDIAN && MOCK, 'MERIDIAN_BIN and MOCK_BIN must be set');
  dir = mkdtempSync(join(tmpdir(), 'meridian-sdk-anthropic-'));
  mockA = await startAndWait(MOCK, ['--name', 'a']);
  mockB = await startAndWait(MOCK, ['--name', 'b']);
  const sha = createHash('sha256').update(GATEWAY_KEY).digest('hex');
  const cfg = {
    listen: '127.0.0.1:0',
    health: { failure_threshold: 1000000 },
    providers: {
      ant: { kind: 'anthropic', base_url: `http://127.0.0.1:${mockA}/v1`, api_key: 'sk-ant-up' },
      oai: { kind: 'openai', base_url: `http://127.0.0.1:${mockA}/v1`, api_key: 'sk-oai-up' },
      bad: { kind: 'anthropic', base_url: `http://127.0.0.1:${mockB}/v1`, api_key: 'sk-ant-bad' },
    },
    routes: {
      claude: { aliases: ['claude-sonnet-*'], targets: [{ provider: 'ant', model: 'claude-up' }] },
      gpt: { targets: [{ provider: 'oai', model: 'gpt-up' }] },
      'fo-oai': { targets: [{ provider: 'bad', model: 'claude-bad' }, { provider: 'oai', model: 'gpt-up' }] },
      'fo-ant': { targets: [{ provider: 'bad', model: 'claude-bad' }, { provider: 'ant', model: 'claude-up' }] },
    },
    keys: { sdk: { sha256: sha } },
  };
  writeFileSync(join(dir, 'meridian.json'), JSON.stringify(cfg));
  const port = await startAndWait(MERIDIAN, ['--config', join(dir, 'meridian.json'), '--listen', '127.0.0.1:0']);
  base = `http://127.0.0.1:${port}`;
  client = new Anthropic({ apiKey: GATEWAY_KEY, baseURL: base, maxRetries: 0, timeout: 20000 });
});

after(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await stopAll(); // a daemon that exits badly or reports a sanitizer error fails the suite
});

for (const t of TARGETS) {
  test(`${t.name}: messages.create`, async () => {
    await reset();
    const { data, response } = await client.messages
      .create({ model: t.model, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(data.type, 'message');
    assert.equal(data.role, 'assistant');
    assert.equal(data.content[0].type, 'text');
    assert.equal(data.content[0].text, 'Hello from a');
    assert.equal(data.stop_reason, 'end_turn');
    assert.equal(data.usage.input_tokens, 5);
    assert.ok(data.usage.output_tokens > 0);
    assert.equal(response.headers.get('x-meridian-provider'), t.provider);
    const seen = await mock(mockA, 'requests');
    assert.equal(seen.length, 1);
    assert.equal(seen[0].path, t.path);
    assert.equal(JSON.parse(seen[0].body).model, t.upstream);
    assert.ok(!JSON.stringify(seen).includes(GATEWAY_KEY), 'the gateway key reached the upstream');
  });

  test(`${t.name}: messages.stream — event order and the final message`, async () => {
    await reset();
    const stream = client.messages.stream({
      model: t.model, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }],
    });
    const events = [];
    let start = null;
    for await (const ev of stream) {
      events.push(ev.type);
      if (ev.type === 'message_start') start = ev.message;
    }
    const final = await stream.finalMessage();
    const order = events.filter((e, i) => e !== events[i - 1]); // runs of deltas as one
    assert.deepEqual(order, ['message_start', 'content_block_start', 'content_block_delta',
      'content_block_stop', 'message_delta', 'message_stop']);
    if (t.name === 'anthropic') assert.equal(start.usage.input_tokens, 5); // the upstream's own count
    assert.equal(final.content.length, 1);
    assert.equal(final.content[0].text, 'tok0 tok1 tok2 tok3 tok4 ');
    assert.equal(final.stop_reason, 'end_turn');
    assert.ok(final.usage.output_tokens > 0);
  });

  test(`${t.name}: a tool-use loop (tool_use -> tool_result -> answer)`, async () => {
    await reset();
    if (t.name === 'openai') await mock(mockA, 'scenario', { call_tools: true });
    const ask = { role: 'user', content: 'Weather in Paris?' };
    const first = await client.messages.stream({ model: t.model, max_tokens: 256, tools, messages: [ask] })
      .finalMessage();
    assert.equal(first.stop_reason, 'tool_use');
    const use = first.content.find((b) => b.type === 'tool_use');
    assert.ok(use, `no tool_use block in ${JSON.stringify(first.content)}`);
    assert.equal(use.name, 'get_weather');
    assert.deepEqual(use.input, { city: 'mock', days: 1 });
    const answer = await client.messages.create({
      model: t.model, max_tokens: 256, tools,
      messages: [ask, { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '18C and sunny' }] }],
    });
    assert.equal(answer.stop_reason, 'end_turn');
    assert.match(answer.content[0].text, /tool result: .*18C and sunny/);
  });

  test(`${t.name}: countTokens`, async () => {
    await reset();
    const { data, response } = await client.messages
      .countTokens({ model: t.model, messages: [{ role: 'user', content: 'count these words' }] })
      .withResponse();
    assert.ok(Number.isInteger(data.input_tokens) && data.input_tokens > 0, JSON.stringify(data));
    const seen = await mock(mockA, 'requests');
    if (t.name === 'anthropic') {
      assert.equal(seen.length, 1); // forwarded: the upstream counts
      assert.equal(seen[0].path, '/v1/messages/count_tokens');
      assert.equal(response.headers.get('x-meridian-token-estimate'), null);
    } else {
      assert.equal(seen.length, 0); // no target counts: estimated, and marked
      assert.equal(response.headers.get('x-meridian-token-estimate'), 'bytes/4');
    }
  });
}

test('an unknown model is a NotFoundError in Anthropic shape', async () => {
  await reset();
  await assert.rejects(
    client.messages.create({ model: 'no-such-model', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }),
    (err) => err instanceof Anthropic.NotFoundError && err.status === 404 &&
      err.error?.type === 'error' && err.error?.error?.type === 'not_found_error');
  assert.equal((await mock(mockA, 'requests')).length, 0);
});

test('a bad key is an AuthenticationError, as x-api-key and as a bearer token', async () => {
  await reset();
  const viaKey = new Anthropic({ apiKey: 'mk-wrong', baseURL: base, maxRetries: 0 });
  const viaToken = new Anthropic({ authToken: 'mk-wrong', apiKey: null, baseURL: base, maxRetries: 0 });
  for (const c of [viaKey, viaToken]) {
    for (const model of ['claude', 'gpt']) {
      await assert.rejects(
        c.messages.create({ model, max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }),
        (err) => err instanceof Anthropic.AuthenticationError &&
          err.error?.error?.type === 'authentication_error');
    }
  }
  // the right key as a bearer token is accepted too
  const good = new Anthropic({ authToken: GATEWAY_KEY, apiKey: null, baseURL: base, maxRetries: 0 });
  const m = await good.messages.create({ model: 'gpt', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] });
  assert.equal(m.content[0].text, 'Hello from a');
});

for (const route of ['fo-oai', 'fo-ant']) {
  test(`${route}: a 500ing target fails over to the next, invisibly`, async () => {
    await reset();
    const { data, response } = await client.messages
      .create({ model: route, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    assert.equal(data.content[0].text, 'Hello from a');
    assert.equal(response.headers.get('x-meridian-attempts'), '2');
    const stream = client.messages.stream({ model: route, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    const final = await stream.finalMessage();
    assert.equal(final.content[0].text, 'tok0 tok1 tok2 tok3 tok4 ');
    assert.equal((await mock(mockB, 'requests')).length, 2);
  });
}
