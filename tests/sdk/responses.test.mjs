// The official openai npm SDK, unmodified, against POST /v1/responses of the
// real meridian binary (issue 15), through an OpenAI-compatible chat target,
// an Anthropic target and a provider serving the Responses API natively
// (responses_api; the C mock speaks all three): responses.create with a
// string and with items, responses.stream (event order, finalResponse(),
// output_text), a previous_response_id loop (a real function-calling loop
// on Anthropic, whose mock calls the first tool), retrieve, inputItems,
// delete, store:false then previous_response_id -> NotFoundError; a
// follow-up sent the instant response.completed arrives sees the whole
// history upstream; failover from a 500ing target. Run by CTest through
// `node --test` (tests/sdk/run responses.test.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import OpenAI from 'openai';
import { startAndWait, stopAll } from './procs.mjs';

const MERIDIAN = process.env.MERIDIAN_BIN;
const MOCK = process.env.MOCK_BIN;
const KEY_A = 'mk-responses-a-71c3e9';
const KEY_B = 'mk-responses-b-2d8f40';
let dir, mockPort, badPort, client, clientB;

async function mock(path, body, port = mockPort) {
  const r = await fetch(`http://127.0.0.1:${port}/_mock/${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return r.json();
}

async function sha256(s) {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(s).digest('hex');
}

// name, model (a route), the upstream path, what the answer says
const TARGETS = [
  { name: 'chat', model: 'gpt', path: '/v1/chat/completions', text: 'Hello from x', stream: 'tok0 tok1 tok2 tok3 tok4 ' },
  { name: 'anthropic', model: 'claude', path: '/v1/messages', text: 'Hello from x', stream: 'tok0 tok1 tok2 tok3 tok4 ' },
  { name: 'native', model: 'native', path: '/v1/responses', text: 'Hello from x', stream: 'tok0 tok1 tok2 tok3 tok4 ' },
];

before(async () => {
  assert.ok(MERIDIAN && MOCK, 'MERIDIAN_BIN and MOCK_BIN must be set');
  dir = mkdtempSync(join(tmpdir(), 'meridian-sdk-responses-'));
  mockPort = await startAndWait(MOCK, ['--name', 'x']);
  badPort = await startAndWait(MOCK, ['--name', 'bad']);
  await mock('scenario', { status: 500 }, badPort);
  const up = `http://127.0.0.1:${mockPort}/v1`;
  const cfg = {
    listen: '127.0.0.1:0',
    health: { failure_threshold: 1000000 },
    providers: {
      oai: { kind: 'openai', base_url: up, api_key: 'sk-oai' },
      ant: { kind: 'anthropic', base_url: up, api_key: 'sk-ant' },
      nat: { kind: 'openai', base_url: up, api_key: 'sk-nat', responses_api: true },
      bad: { kind: 'openai', base_url: `http://127.0.0.1:${badPort}/v1`, api_key: 'sk-bad' },
    },
    routes: {
      gpt: { targets: [{ provider: 'oai', model: 'gpt-up' }] },
      claude: { targets: [{ provider: 'ant', model: 'claude-up' }] },
      native: { targets: [{ provider: 'nat', model: 'gpt-nat' }] },
      fo: { targets: [{ provider: 'bad', model: 'gpt-bad' }, { provider: 'oai', model: 'gpt-up' }] },
    },
    keys: { a: { sha256: await sha256(KEY_A) }, b: { sha256: await sha256(KEY_B) } },
  };
  writeFileSync(join(dir, 'meridian.json'), JSON.stringify(cfg));
  const port = await startAndWait(MERIDIAN, ['--config', join(dir, 'meridian.json'), '--listen', '127.0.0.1:0']);
  const opts = { baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0, timeout: 20000 };
  client = new OpenAI({ apiKey: KEY_A, ...opts });
  clientB = new OpenAI({ apiKey: KEY_B, ...opts });
});

after(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await stopAll(); // a daemon that exits badly or reports a sanitizer error fails the suite
});

async function upstream() {
  return (await mock('requests')).filter((r) => r.path !== '/_mock/requests');
}

const tools = [{
  type: 'function',
  name: 'get_weather',
  description: 'Current weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
}];

for (const t of TARGETS) {
  test(`${t.name}: create with a string, then with items`, async () => {
    await mock('reset', {});
    const r = await client.responses.create({ model: t.model, input: 'hi', instructions: 'Be brief.' });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.match(r.id, /^resp_/);
    assert.equal(r.output_text, t.text);
    assert.equal(r.usage.input_tokens, 5);
    const r2 = await client.responses.create({
      model: t.model,
      input: [
        { role: 'developer', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'input_text', text: 'hello' }] },
      ],
    });
    assert.equal(r2.output_text, t.text);
    const seen = await upstream();
    assert.equal(seen.length, 2);
    for (const s of seen) assert.equal(s.path, t.path);
  });

  test(`${t.name}: stream — event order, finalResponse(), output_text`, async () => {
    await mock('reset', {});
    const stream = client.responses.stream({ model: t.model, input: 'hi' });
    const types = [];
    let seq = -1;
    let text = '';
    for await (const ev of stream) {
      types.push(ev.type);
      assert.ok(ev.sequence_number > seq, `sequence_number ${ev.sequence_number} after ${seq}`);
      seq = ev.sequence_number;
      if (ev.type === 'response.output_text.delta') text += ev.delta;
    }
    const final = await stream.finalResponse();
    // this SDK version puts output_text on create()'s answers only: the
    // final response's message text, read as output_text is made
    const outputText = final.output.filter((o) => o.type === 'message')
      .flatMap((o) => o.content).filter((c) => c.type === 'output_text').map((c) => c.text).join('');
    assert.equal(types[0], 'response.created');
    assert.equal(types[1], 'response.in_progress');
    assert.equal(types[types.length - 1], 'response.completed');
    const first = (ty) => types.indexOf(ty);
    assert.ok(first('response.output_item.added') < first('response.output_text.delta'));
    assert.ok(first('response.output_text.delta') < first('response.output_text.done'));
    assert.ok(first('response.output_text.done') < first('response.output_item.done'));
    assert.equal(text, t.stream);
    assert.equal(final.status, 'completed');
    assert.equal(outputText, t.stream);
    const seen = await upstream();
    assert.equal(seen.length, 1);
    assert.equal(JSON.parse(seen[0].body).stream, true);
    if (t.name === 'native') assert.equal(JSON.parse(seen[0].body).stream_options, undefined);
  });

  test(`${t.name}: previous_response_id, retrieve, inputItems, delete`, async () => {
    await mock('reset', {});
    const r1 = await client.responses.create({ model: t.model, input: 'first question' });
    const r2 = await client.responses.create({ model: t.model, input: 'second question', previous_response_id: r1.id });
    // a native provider's answer is forwarded untouched: it never saw the id
    if (t.name !== 'native') assert.equal(r2.previous_response_id, r1.id);
    const seen = await upstream();
    const body = JSON.parse(seen[1].body);
    const sent = JSON.stringify(body);
    assert.ok(sent.indexOf('first question') < sent.indexOf(t.text) && sent.indexOf(t.text) < sent.indexOf('second question'),
      `the history is not upstream in order: ${sent}`);
    assert.equal(body.previous_response_id, undefined);
    const got = await client.responses.retrieve(r2.id);
    assert.equal(got.id, r2.id);
    assert.equal(got.output_text, r2.output_text);
    const items = [];
    for await (const it of client.responses.inputItems.list(r2.id, { order: 'asc' })) items.push(it);
    assert.equal(items.length, 3); // first question, the answer, second question
    await client.responses.delete(r2.id);
    await assert.rejects(client.responses.retrieve(r2.id), OpenAI.NotFoundError);
  });

  test(`${t.name}: store:false keeps nothing; another key finds nothing`, async () => {
    await mock('reset', {});
    const r = await client.responses.create({ model: t.model, input: 'x', store: false });
    assert.equal(r.store === undefined ? false : r.store, false);
    await assert.rejects(
      client.responses.create({ model: t.model, input: 'y', previous_response_id: r.id }),
      (e) => e instanceof OpenAI.NotFoundError && e.param === 'previous_response_id');
    const kept = await client.responses.create({ model: t.model, input: 'x' });
    await assert.rejects(clientB.responses.retrieve(kept.id), OpenAI.NotFoundError);
    await assert.rejects(
      clientB.responses.create({ model: t.model, input: 'y', previous_response_id: kept.id }),
      OpenAI.NotFoundError);
    assert.equal((await upstream()).length, 2);
  });
}

test('anthropic: a function-calling loop with previous_response_id', async () => {
  await mock('reset', {});
  const r1 = await client.responses.create({ model: 'claude', input: 'Weather in Paris?', tools });
  const call = r1.output.find((o) => o.type === 'function_call');
  assert.ok(call, `no function_call in ${JSON.stringify(r1.output)}`);
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.arguments), { city: 'mock' });
  const r2 = await client.responses.create({
    model: 'claude',
    previous_response_id: r1.id,
    input: [{ type: 'function_call_output', call_id: call.call_id, output: 'sunny, 21C' }],
    tools,
  });
  assert.equal(r2.output_text, 'Hello from x (tool result: sunny, 21C)');
  const seen = await upstream();
  const msgs = JSON.parse(seen[1].body).messages;
  assert.equal(msgs[0].role, 'user');
  assert.ok(msgs[1].content.some((b) => b.type === 'tool_use' && b.id === call.call_id));
  assert.equal(msgs[2].content[0].type, 'tool_result');
});

test('a follow-up sent the instant response.completed arrives sees the whole history', async () => {
  await mock('reset', {});
  const stream = client.responses.stream({ model: 'claude', input: 'first question' });
  let followUp, gapMs;
  for await (const ev of stream) {
    if (ev.type === 'response.completed') {
      const t0 = performance.now();
      followUp = client.responses.create({ model: 'gpt', input: 'second question', previous_response_id: ev.response.id });
      gapMs = performance.now() - t0;
    }
  }
  const r = await followUp;
  assert.equal(r.status, 'completed');
  console.log(`# follow-up sent ${gapMs.toFixed(3)} ms after response.completed arrived`);
  const seen = await upstream();
  const chat = JSON.parse(seen.find((s) => s.path === '/v1/chat/completions').body);
  assert.deepEqual(chat.messages.map((m) => m.role), ['user', 'assistant', 'user']);
  assert.equal(chat.messages[0].content, 'first question');
  assert.match(chat.messages[1].content, /tok0/);
  assert.equal(chat.messages[2].content, 'second question');
});

test('failover from a 500ing target, streamed and not', async () => {
  await mock('reset', {});
  await mock('reset', {}, badPort);
  await mock('scenario', { status: 500 }, badPort);
  const { data, response } = await client.responses.create({ model: 'fo', input: 'hi' }).withResponse();
  assert.equal(data.output_text, 'Hello from x');
  assert.equal(response.headers.get('x-meridian-provider'), 'oai');
  const final = await client.responses.stream({ model: 'fo', input: 'hi' }).finalResponse();
  assert.equal(final.status, 'completed');
  assert.equal(final.output[0].content[0].text, 'tok0 tok1 tok2 tok3 tok4 ');
  assert.equal((await mock('requests', undefined, badPort)).length, 2);
});
