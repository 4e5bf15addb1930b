// Claude Code itself (npm @anthropic-ai/claude-code, its native binary,
// offline) pointed at the real meridian binary with ANTHROPIC_BASE_URL:
// `claude -p` answers through an Anthropic target (byte passthrough) and an
// OpenAI-compatible one (translated), authenticating with ANTHROPIC_API_KEY
// and with ANTHROPIC_AUTH_TOKEN. Its requests (/v1/messages?beta=true with
// tools, system blocks, thinking, context_management, output_config,
// metadata) are served, not refused: what the translated target cannot use
// is dropped and named in the audit record. Claude Code runs with a
// temporary HOME and working directory, so it writes nothing outside this
// test's temp dir; every wait is bounded. Run by CTest through `node --test`
// (tests/claude/run).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir, arch } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startAndWait, stopAll, runBounded, auditRecords, auditAfter } from '../sdk/procs.mjs';

const MERIDIAN = process.env.MERIDIAN_BIN;
const MOCK = process.env.MOCK_BIN;
const GATEWAY_KEY = 'mk-claude-code-8e2f4a6c1b3d';
const CLAUDE_MS = 90000;
const here = dirname(fileURLToPath(import.meta.url));
let dir, mockPort, base, auditPath;

// The native binary: the wrapper's bin/claude.exe once its postinstall copied
// it there, else the platform package's own (npm may skip install scripts).
function claudeBin() {
  const pkgs = join(here, 'node_modules', '@anthropic-ai');
  const wrapper = join(pkgs, 'claude-code', 'bin', 'claude.exe');
  if (existsSync(wrapper) && statSync(wrapper).size > 1 << 20) return wrapper;
  const native = join(pkgs, `claude-code-linux-${arch()}`, 'claude');
  assert.ok(existsSync(native), `no Claude Code binary in ${pkgs}: run tests/claude/run --install`);
  return native;
}

async function mock(path, body) {
  const r = await fetch(`http://127.0.0.1:${mockPort}/_mock/${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return r.json();
}

// Runs `claude -p prompt` with env on top of a minimal one; resolves with
// {code, stdout, stderr} or rejects after CLAUDE_MS (killing it).
function claude(prompt, model, auth) {
  const home = mkdtempSync(join(dir, 'home-'));
  const cwd = join(home, 'work');
  mkdirSync(cwd);
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_CACHE_HOME: join(home, '.cache'),
    XDG_DATA_HOME: join(home, '.local', 'share'),
    XDG_STATE_HOME: join(home, '.local', 'state'),
    CLAUDE_CONFIG_DIR: join(home, '.claude'),
    TMPDIR: home,
    ANTHROPIC_BASE_URL: base,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
    ...auth,
  };
  const args = ['-p', prompt, '--model', model, '--output-format', 'json', '--max-turns', '3'];
  return runBounded('claude', claudeBin(), args, { cwd, env }, CLAUDE_MS);
}

before(async () => {
  assert.ok(MERIDIAN && MOCK, 'MERIDIAN_BIN and MOCK_BIN must be set');
  dir = mkdtempSync(join(tmpdir(), 'meridian-claude-code-'));
  auditPath = join(dir, 'audit.jsonl');
  mockPort = await startAndWait(MOCK, ['--name', 'a']);
  const sha = createHash('sha256').update(GATEWAY_KEY).digest('hex');
  const cfg = {
    listen: '127.0.0.1:0',
    audit: { path: auditPath },
    providers: {
      ant: { kind: 'anthropic', base_url: `http://127.0.0.1:${mockPort}/v1`, api_key: 'sk-ant-up' },
      oai: { kind: 'openai', base_url: `http://127.0.0.1:${mockPort}/v1`, api_key: 'sk-oai-up' },
    },
    routes: {
      // Claude Code's own model names (sonnet for the answer, haiku for its
      // side requests) are aliases
      claude: { aliases: ['claude-opus-*', 'claude-sonnet-*', 'claude-haiku-*'], targets: [{ provider: 'ant', model: 'claude-up' }] },
      gpt: { aliases: ['gpt-*', 'claude-via-gpt-*'], targets: [{ provider: 'oai', model: 'gpt-up' }] },
    },
    keys: { cc: { sha256: sha } },
  };
  writeFileSync(join(dir, 'meridian.json'), JSON.stringify(cfg));
  const port = await startAndWait(MERIDIAN, ['--config', join(dir, 'meridian.json'), '--listen', '127.0.0.1:0']);
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await stopAll(); // a daemon that exits badly or reports a sanitizer error fails the suite
});

// Claude Code's JSON result of a run that must have succeeded.
function result(r) {
  assert.equal(r.code, 0, `claude exited with ${r.code}:\n${r.stdout}\n${r.stderr}`);
  const out = JSON.parse(r.stdout);
  assert.equal(out.is_error, false, r.stdout);
  assert.equal(out.subtype, 'success', r.stdout);
  return out;
}

const AUTHS = [
  ['ANTHROPIC_API_KEY', { ANTHROPIC_API_KEY: GATEWAY_KEY }],
  ['ANTHROPIC_AUTH_TOKEN', { ANTHROPIC_AUTH_TOKEN: GATEWAY_KEY }],
];

for (const [how, auth] of AUTHS) {
  test(`an Anthropic target (passthrough), ${how}`, async () => {
    await mock('reset', {});
    const from = auditRecords(auditPath).length;
    const out = result(await claude('Say hello.', 'claude-opus-4-6', auth));
    // the mock answers tool calls for the first tool Claude Code declares,
    // and quotes the tool's result in its last answer
    assert.match(out.result, /^Hello from a/);
    const seen = await mock('requests');
    assert.ok(seen.length >= 1);
    for (const s of seen) {
      assert.equal(s.path, '/v1/messages');
      assert.equal(s.headers['x-api-key'], 'sk-ant-up');
      assert.equal(s.headers.authorization, undefined);
      assert.ok(!JSON.stringify(s).includes(GATEWAY_KEY), 'the gateway key reached the upstream');
      // the beta client's flags, all accepted by an anthropic provider by default
      assert.match(s.headers['anthropic-beta'], /(^|,)claude-code-20250219(,|$)/);
      const body = JSON.parse(s.body);
      assert.equal(body.model, 'claude-up');
      for (const k of ['tools', 'system', 'thinking', 'context_management', 'output_config', 'metadata'])
        assert.ok(k in body, `Claude Code sent no ${k}: ${Object.keys(body)}`);
    }
    const audit = await auditAfter(auditPath, from, seen.length);
    assert.equal(audit.length, seen.length);
    for (const a of audit) {
      assert.equal(a.dialect, 'messages');
      assert.equal(a.route, 'claude');
      assert.equal(a.status, 200);
      assert.deepEqual(a.attempts[0].dropped, []);
    }
  });

  test(`an OpenAI-compatible target (translated), ${how}`, async () => {
    await mock('reset', {});
    const from = auditRecords(auditPath).length;
    // a Claude model name to Claude Code (so it sends thinking, effort and
    // context management), an alias of the OpenAI route to meridian
    const out = result(await claude('Say hello.', 'claude-via-gpt-opus-4-6', auth));
    assert.equal(out.result, 'tok0 tok1 tok2 tok3 tok4 ');
    const seen = await mock('requests');
    assert.ok(seen.length >= 1);
    for (const s of seen) {
      assert.equal(s.path, '/v1/chat/completions');
      assert.equal(s.headers.authorization, 'Bearer sk-oai-up');
      assert.equal(s.headers['anthropic-beta'], undefined);
      assert.ok(!JSON.stringify(s).includes(GATEWAY_KEY), 'the gateway key reached the upstream');
      const body = JSON.parse(s.body);
      assert.equal(body.model, 'gpt-up');
      assert.ok(body.tools.length > 0, 'tools translated');
      assert.equal(body.messages[0].role, 'system'); // system blocks
      assert.equal(body.reasoning_effort, 'high'); // output_config.effort
      assert.match(body.user, /\S/); // metadata.user_id
    }
    // served, not refused: what the target cannot use is named in the audit record
    const audit = await auditAfter(auditPath, from, seen.length);
    assert.equal(audit.length, seen.length);
    for (const a of audit) {
      assert.equal(a.dialect, 'messages');
      assert.equal(a.route, 'gpt');
      assert.equal(a.status, 200);
      const att = a.attempts[0];
      for (const k of ['context_management', 'thinking'])
        assert.ok(att.dropped.includes(k), `${k} not recorded as dropped: ${att.dropped}`);
      assert.ok(att.betas_dropped.includes('claude-code-20250219'), `${att.betas_dropped}`);
    }
  });
}
