// The official openai npm SDK, unmodified, against the real meridian binary
// and the C mock upstream. Run by CTest through `node --test`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import OpenAI from 'openai';
import { startAndWait, stopAll } from './procs.mjs';

const MERIDIAN = process.env.MERIDIAN_BIN;
const MOCK = process.env.MOCK_BIN;
const CLIENT_KEY = 'sk-client-key-must-not-be-forwarded';
const PROVIDER_KEY = 'sk-provider-key-a';
let dir, mockPort, client, base;

function refusedPort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function mock(path, body) {
  const r = await fetch(`http://127.0.0.1:${mockPort}/_mock/${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return r.json();
}

before(async () => {
  assert.ok(MERIDIAN && MOCK, 'MERIDIAN_BIN and MOCK_BIN must be set');
  dir = mkdtempSync(join(tmpdir(), 'meridian-sdk-'));
  mockPort = await startAndWait(MOCK, ['--name', 'a']);
  const dead = await refusedPort();
  const cfg = {
    listen: '127.0.0.1:0',
    providers: {
      dead: { kind: 'openai', base_url: `http://127.0.0.1:${dead}/v1`, api_key: 'sk-dead' },
      a: { kind: 'openai', base_url: `http://127.0.0.1:${mockPort}/v1`, api_key: '${SDK_TEST_KEY}' },
    },
    routes: {
      chat: { targets: [{ provider: 'dead', model: 'gone' }, { provider: 'a', model: 'mock-chat' }] },
      embed: { targets: [{ provider: 'a', model: 'mock-embed' }] },
    },
  };
  writeFileSync(join(dir, 'meridian.json'), JSON.stringify(cfg));
  const port = await startAndWait(MERIDIAN, ['--config', join(dir, 'meridian.json'), '--listen', '127.0.0.1:0'],
    { SDK_TEST_KEY: PROVIDER_KEY });
  base = `http://127.0.0.1:${port}/v1`;
  client = new OpenAI({ apiKey: CLIENT_KEY, baseURL: base, maxRetries: 0, timeout: 20000 });
});

after(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await stopAll(); // a daemon that exits badly or reports a sanitizer error fails the suite
});

test('non-stream chat fails over and returns the provider answer', async () => {
  await mock('reset', {});
  const { data, response } = await client.chat.completions
    .create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] })
    .withResponse();
  assert.equal(data.choices[0].message.content, 'Hello from a');
  assert.equal(data.model, 'mock-chat');
  assert.equal(response.headers.get('x-meridian-provider'), 'a');
  assert.equal(response.headers.get('x-meridian-attempts'), '2');
  assert.match(response.headers.get('x-request-id'), /\S+/);
  const seen = await mock('requests');
  assert.equal(seen.length, 1);
  assert.equal(seen[0].headers.authorization, `Bearer ${PROVIDER_KEY}`);
  assert.ok(!JSON.stringify(seen).includes(CLIENT_KEY), 'client key reached the upstream');
});

test('streamed chat arrives chunk by chunk', async () => {
  await mock('reset', {});
  await mock('scenario', { chunks: 6, chunk_delay_ms: 20 });
  const stream = await client.chat.completions.create({
    model: 'chat', stream: true, messages: [{ role: 'user', content: 'hi' }],
  });
  let text = '';
  let finish = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    text += chunk.choices[0]?.delta?.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, 'tok0 tok1 tok2 tok3 tok4 tok5 ');
  assert.equal(finish, 'stop');
  assert.equal(chunks, 7);
});

test('a failure after the stream started surfaces as an SDK error', async () => {
  await mock('reset', {});
  // The delay lets the first chunks reach the client before the reset.
  await mock('scenario', { chunks: 6, chunk_delay_ms: 30, fault: 'reset_mid_body', reset_after_chunks: 2, count: 1 });
  const stream = await client.chat.completions.create({ model: 'a/mock-chat', stream: true, messages: [] });
  let got = 0;
  await assert.rejects(async () => {
    for await (const chunk of stream) got += chunk.choices.length;
  }, (err) => err instanceof OpenAI.APIError && /mid-stream/.test(err.message));
  assert.equal(got, 2);
});

test('models, embeddings and errors', async () => {
  await mock('reset', {});
  const models = [];
  for await (const m of client.models.list()) models.push(m.id);
  assert.ok(models.includes('chat') && models.includes('a/mock-chat'), models.join(','));
  const emb = await client.embeddings.create({ model: 'embed', input: 'hello', encoding_format: 'float' });
  assert.deepEqual(emb.data[0].embedding, [0.1, 0.2, 0.3]);
  await assert.rejects(client.chat.completions.create({ model: 'nope', messages: [] }),
    (err) => err instanceof OpenAI.NotFoundError && err.code === 'model_not_found');
  await mock('scenario', { status: 400, count: 1 });
  await assert.rejects(client.chat.completions.create({ model: 'a/x', messages: [] }),
    (err) => err instanceof OpenAI.BadRequestError);
});
