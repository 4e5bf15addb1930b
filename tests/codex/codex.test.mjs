// The Codex CLI itself (npm @openai/codex, its native binary, offline)
// pointed at the real meridian binary through a `model_providers` entry with
// wire_api = "responses": `codex exec` answers through an OpenAI-compatible
// chat target and through an Anthropic target (translated both ways), and
// on the Anthropic target runs a whole tool loop — the mock calls Codex's
// first tool, Codex sends the result back with the full history and
// store:false, and the thinking block's signature comes back to Anthropic
// sealed in the reasoning item's encrypted_content. What Codex sends (the
// audit record keeps the client's body: tools, reasoning, include,
// prompt_cache_key, store:false, stream) is asserted, and what each target
// got. Codex runs with a temporary HOME and CODEX_HOME and working
// directory; every wait is bounded. Run by CTest through `node --test`
// (tests/codex/run).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startAndWait, stopAll, runBounded, auditRecords, auditAfter } from '../sdk/procs.mjs';

const MERIDIAN = process.env.MERIDIAN_BIN;
const MOCK = process.env.MOCK_BIN;
const GATEWAY_KEY = 'mk-codex-5d1e7a9b3c2f';
const CODEX_MS = 90000;
const here = dirname(fileURLToPath(import.meta.url));
let dir, mockPort, base, auditPath;

async function mock(path, body) {
  const r = await fetch(`http://127.0.0.1:${mockPort}/_mock/${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return r.json();
}

// The config.toml docs/clients.md gives, for `model`.
function codexConfig(model) {
  return [
    `model = "${model}"`,
    'model_provider = "meridian"',
    'model_reasoning_effort = "high"',
    '',
    '[model_providers.meridian]',
    'name = "Meridian"',
    `base_url = "${base}/v1"`,
    'env_key = "MERIDIAN_API_KEY"',
    'wire_api = "responses"',
    '',
  ].join('\n');
}

// Runs `codex exec prompt` in a fresh HOME; resolves with {code, stdout,
// stderr} or rejects after CODEX_MS (killing it).
function codex(prompt, model) {
  const home = mkdtempSync(join(dir, 'home-'));
  const codexHome = join(home, '.codex');
  const cwd = join(home, 'work');
  mkdirSync(codexHome);
  mkdirSync(cwd);
  writeFileSync(join(codexHome, 'config.toml'), codexConfig(model));
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    CODEX_HOME: codexHome,
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_CACHE_HOME: join(home, '.cache'),
    TMPDIR: home,
    MERIDIAN_API_KEY: GATEWAY_KEY,
  };
  const bin = join(here, 'node_modules', '@openai', 'codex', 'bin', 'codex.js');
  assert.ok(existsSync(bin), `no Codex CLI in ${bin}: run tests/codex/run --install`);
  const args = [bin, 'exec', '--skip-git-repo-check', prompt];
  return runBounded('codex', process.execPath, args, { cwd, env }, CODEX_MS);
}

before(async () => {
  assert.ok(MERIDIAN && MOCK, 'MERIDIAN_BIN and MOCK_BIN must be set');
  dir = mkdtempSync(join(tmpdir(), 'meridian-codex-'));
  auditPath = join(dir, 'audit.jsonl');
  mockPort = await startAndWait(MOCK, ['--name', 'x']);
  const sha = createHash('sha256').update(GATEWAY_KEY).digest('hex');
  const cfg = {
    listen: '127.0.0.1:0',
    audit: { path: auditPath, bodies: true },
    providers: {
      oai: { kind: 'openai', base_url: `http://127.0.0.1:${mockPort}/v1`, api_key: 'sk-oai-up' },
      ant: { kind: 'anthropic', base_url: `http://127.0.0.1:${mockPort}/v1`, api_key: 'sk-ant-up' },
    },
    routes: {
      gpt: { targets: [{ provider: 'oai', model: 'gpt-up' }] },
      claude: { targets: [{ provider: 'ant', model: 'claude-up' }] },
    },
    keys: { codex: { sha256: sha } },
  };
  writeFileSync(join(dir, 'meridian.json'), JSON.stringify(cfg));
  const port = await startAndWait(MERIDIAN, ['--config', join(dir, 'meridian.json'), '--listen', '127.0.0.1:0']);
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await stopAll(); // a daemon that exits badly or reports a sanitizer error fails the suite
});

function ran(r) {
  assert.equal(r.code, 0, `codex exited with ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

// What Codex itself sent, from the audit record's request body.
function assertCodexRequest(a) {
  assert.equal(a.dialect, 'responses');
  assert.equal(a.endpoint, '/responses');
  assert.equal(a.status, 200);
  const body = JSON.parse(a.request_body);
  assert.equal(body.stream, true);
  assert.equal(body.store, false);
  assert.deepEqual(body.include, ['reasoning.encrypted_content']);
  assert.match(body.prompt_cache_key, /\S/);
  assert.equal(body.reasoning.effort, 'high');
  assert.ok(body.tools.some((t) => t.type === 'function'), 'Codex sent no function tools');
  assert.equal(body.previous_response_id, undefined);
  return body;
}

test('an OpenAI-compatible chat target (translated)', async () => {
  await mock('reset', {});
  const from = auditRecords(auditPath).length;
  const out = ran(await codex('Say hello.', 'gpt'));
  assert.match(out, /tok0 tok1 tok2 tok3 tok4/);
  const seen = await mock('requests');
  assert.ok(seen.length >= 1);
  for (const s of seen) {
    assert.equal(s.path, '/v1/chat/completions');
    assert.equal(s.headers.authorization, 'Bearer sk-oai-up');
    assert.ok(!JSON.stringify(s).includes(GATEWAY_KEY), 'the gateway key reached the upstream');
    const body = JSON.parse(s.body);
    assert.equal(body.model, 'gpt-up');
    assert.equal(body.stream, true);
    assert.ok(body.tools.length > 0 && body.tools.every((t) => t.type === 'function'));
    assert.equal(body.reasoning_effort, 'high');
    assert.match(body.prompt_cache_key, /\S/);
    assert.equal(body.store, undefined);
    assert.equal(body.include, undefined);
  }
  const audit = await auditAfter(auditPath, from, seen.length);
  assert.equal(audit.length, seen.length);
  for (const a of audit) {
    assertCodexRequest(a);
    // Codex's hosted tools (web_search, namespaces) have no chat form
    assert.ok(a.attempts[0].dropped.some((d) => d.startsWith('tools')), `${a.attempts[0].dropped}`);
  }
});

test('an Anthropic target: a tool loop with store:false and the signature round trip', async () => {
  await mock('reset', {});
  const from = auditRecords(auditPath).length;
  const out = ran(await codex('Say hello.', 'claude'));
  // the mock called Codex's first tool; its last answer quotes the result
  assert.match(out, /Hello from x \(tool result: /);
  const seen = await mock('requests');
  assert.equal(seen.length, 2, JSON.stringify(seen.map((s) => s.path)));
  for (const s of seen) {
    assert.equal(s.path, '/v1/messages');
    assert.equal(s.headers['x-api-key'], 'sk-ant-up');
    const body = JSON.parse(s.body);
    assert.equal(body.model, 'claude-up');
    assert.equal(body.thinking.type, 'enabled'); // reasoning.effort high
    assert.ok(body.tools.length > 0);
  }
  // the second turn: Codex's full history, the thinking block signed by the
  // same provider given back, then the tool's result
  const second = JSON.parse(seen[1].body);
  const assistant = second.messages.find((m) => m.role === 'assistant');
  assert.ok(assistant, 'no assistant turn in the history');
  const thinking = assistant.content.find((b) => b.type === 'thinking');
  assert.equal(thinking.signature, 'mock-sig-x');
  assert.ok(assistant.content.some((b) => b.type === 'tool_use'));
  const last = second.messages[second.messages.length - 1];
  assert.equal(last.content[0].type, 'tool_result');
  const audit = await auditAfter(auditPath, from, 2);
  assert.equal(audit.length, 2);
  for (const a of audit) assertCodexRequest(a);
  // store:false: Codex sends the whole history itself, sealed reasoning included
  const items = JSON.parse(audit[1].request_body).input;
  const reasoning = items.find((i) => i.type === 'reasoning');
  assert.match(reasoning.encrypted_content, /^mr1\./);
  assert.ok(items.some((i) => i.type === 'function_call_output'));
});
