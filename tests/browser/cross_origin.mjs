// Web pages against the gateway in headless Chromium (issue 11, finding 1):
// a page served on another local port tries to spend the operator's
// provider keys, and the mock upstream must receive nothing:
//
//   1. fetch, mode no-cors, a Blob body: no Content-Type, so no preflight
//   2. fetch with Content-Type: application/json (a preflight first)
//   3. an auto-submitted HTML form (enctype text/plain, JSON-looking body)
//   4. DNS rebinding, simulated: the browser resolves evil.test to 127.0.0.1
//      (--host-resolver-rules), so a page of origin http://evil.test:PORT
//      talks to the gateway "same-origin" by a foreign name
//
// and a page on an origin listed in cors.allow_origins calls it the way an
// SDK in a browser does (authorization, content-type, x-stainless-*
// headers): the preflight passes, the answer and its x-meridian-provider
// header are readable, the mock sees exactly that one request.
//
//   node tests/browser/cross_origin.mjs
//
// Environment: MERIDIAN_BIN and MOCK_BIN (set by CTest), CHROMIUM. Exit 0
// pass, 1 fail, 77 skipped (no Chromium). Every wait is a bounded poll; a
// watchdog ends the test after 90 s.
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import {
  begin, children, fail, guardExit, http, launchChromium, log, openTab, run, startListening,
  stop, until,
} from './lib.mjs';
import { judgeExit } from '../integration/harness.mjs';

const MERIDIAN = process.env.MERIDIAN_BIN;
const MOCK = process.env.MOCK_BIN;
const WATCHDOG_MS = 90000;
const CHAT = JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'spend their keys' }] });

let tmp = null;
guardExit();

// A local web server for the test's pages: path -> HTML.
function pageServer(pages) {
  return new Promise((resolve) => {
    const s = createServer((req, res) => {
      const html = pages[req.url.split('?')[0]];
      res.writeHead(html ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html || 'not found');
    });
    s.listen(0, '127.0.0.1', () => resolve({ server: s, port: s.address().port }));
  });
}

async function startGateway(name, mockPort, extra = {}) {
  const cfg = {
    listen: '127.0.0.1:0',
    providers: { m: { kind: 'openai', base_url: `http://127.0.0.1:${mockPort}/v1`, api_key: 'sk-operator-0123456789' } },
    routes: { chat: { targets: [{ provider: 'm', model: 'gpt-4o-mini' }] } },
    ...extra,
  };
  const path = join(tmp, `${name}.json`);
  writeFileSync(path, JSON.stringify(cfg));
  const port = await startListening(name, MERIDIAN, ['--config', path, '--listen', '127.0.0.1:0', '--workers', '1']);
  return { port, base: `http://127.0.0.1:${port}`, child: children[children.length - 1] };
}

async function main() {
  tmp = begin('meridian-cross-origin-', WATCHDOG_MS);
  if (!tmp) return 77;

  const mockPort = await startListening('mock', MOCK, ['--name', 'm']);
  const mock = `http://127.0.0.1:${mockPort}`;
  const mockRequests = async () => JSON.parse((await http(`${mock}/_mock/stats`)).body).requests;
  const nothingReached = async (what) => {
    const n = await mockRequests();
    if (n !== 0) fail(`${what}: the mock upstream received ${n} request(s): the page spent the operator's key`);
    log(`${what}: refused, the mock received nothing`);
  };

  // The attacker's pages, and an application page whose origin is allowed.
  const evil = await pageServer({ '/': '<!doctype html><title>evil</title>' });
  const app = await pageServer({ '/': '<!doctype html><title>app</title>' });
  const evilOrigin = `http://127.0.0.1:${evil.port}`;
  const appOrigin = `http://127.0.0.1:${app.port}`;

  // As shipped (loopback, no keys, no cors): what every page can reach.
  const plain = await startGateway('meridian-plain', mockPort);
  log(`mock on ${mockPort}, gateway on ${plain.port}, evil page on ${evil.port}, app page on ${app.port}`);

  const { chrome, cdp } = await launchChromium(join(tmp, 'profile'),
    ['--host-resolver-rules=MAP evil.test 127.0.0.1']);
  const tab = await openTab(cdp);
  await tab.navigate(`${evilOrigin}/`);
  await until('the evil page', 10000, () => tab.evaluate('document.title === "evil"'));

  // 1. A Blob body: no Content-Type, a "simple" request, no preflight.
  const blob = await tab.evaluate(`fetch(${JSON.stringify(plain.base + '/v1/chat/completions')},
      { method: 'POST', mode: 'no-cors', body: new Blob([${JSON.stringify(CHAT)}]) })
    .then((r) => 'answered (opaque)', (e) => 'rejected: ' + e.message)`, true);
  log(`Blob POST: ${blob}`);
  await nothingReached('a Blob POST (no Content-Type, no preflight)');

  // 2. JSON: the browser asks first, and the gateway says no.
  const json = await tab.evaluate(`fetch(${JSON.stringify(plain.base + '/v1/chat/completions')},
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: ${JSON.stringify(CHAT)} })
    .then((r) => 'status ' + r.status, (e) => 'rejected: ' + e.message)`, true);
  if (!json.startsWith('rejected')) fail(`a cross-origin JSON fetch was answered: ${json}`);
  await nothingReached('a fetch with application/json (preflight refused)');

  // 3. A form posted by the page (a top-level navigation to the gateway).
  await tab.evaluate(`(() => {
    const f = document.createElement('form');
    f.method = 'POST';
    f.enctype = 'text/plain';
    f.action = ${JSON.stringify(plain.base + '/v1/chat/completions')};
    const i = document.createElement('input');
    i.name = '{"model":"chat","messages":[{"role":"user","content":"x"}],"x":"';
    i.value = '"}';
    f.appendChild(i);
    document.body.appendChild(f);
    f.submit();
    return true;
  })()`);
  const landed = await until('the form navigation', 10000,
    async () => { const t = await tab.evaluate('location.href + " " + document.body.innerText'); return t.startsWith(plain.base) && t; });
  log(`form POST landed: ${landed.slice(0, 160)}`);
  await nothingReached('a form POST');

  // 4. DNS rebinding: the page's origin is http://evil.test:PORT, its
  // requests reach the gateway by that name, "same-origin".
  const rebound = `http://evil.test:${plain.port}`;
  await tab.navigate(`${rebound}/healthz`);
  await until('the rebound page', 10000, () => tab.evaluate(`location.origin === ${JSON.stringify(rebound)}`));
  const page = await tab.evaluate('document.body.innerText');
  log(`rebound page (GET /healthz by the name evil.test): ${page.slice(0, 120)}`);
  if (page.includes('"status":"ok"')) fail('the gateway answered a request by a foreign host name');
  const same = await tab.evaluate(`fetch('/v1/chat/completions', { method: 'POST',
      headers: { 'content-type': 'application/json' }, body: ${JSON.stringify(CHAT)} })
    .then((r) => r.text().then((t) => r.status + ' ' + t), (e) => 'rejected: ' + e.message)`, true);
  log(`rebound POST: ${same.slice(0, 160)}`);
  if (!same.startsWith('421')) fail(`a rebound same-origin POST got: ${same}`);
  await nothingReached('DNS rebinding');

  // The allowed origin: a browser app with an SDK's headers gets its answer.
  const cors = await startGateway('meridian-cors', mockPort, { cors: { allow_origins: [appOrigin] } });
  await tab.navigate(`${appOrigin}/`);
  await until('the app page', 10000, () => tab.evaluate('document.title === "app"'));
  const ok = await tab.evaluate(`fetch(${JSON.stringify(cors.base + '/v1/chat/completions')}, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-app',
                 'x-stainless-os': 'Linux', 'x-stainless-lang': 'js' },
      body: ${JSON.stringify(CHAT)} })
    .then((r) => r.json().then((j) => ({ status: r.status, provider: r.headers.get('x-meridian-provider'),
                                         object: j.object })),
          (e) => ({ error: e.message }))`, true);
  log(`allowed origin: ${JSON.stringify(ok)}`);
  if (ok.status !== 200 || ok.provider !== 'm' || ok.object !== 'chat.completion')
    fail(`the allowed origin's request failed: ${JSON.stringify(ok)}`);
  if (await mockRequests() !== 1) fail(`the mock saw ${await mockRequests()} requests, want 1`);
  // ... while the evil origin is still refused by that gateway
  await tab.navigate(`${evilOrigin}/`);
  await until('the evil page again', 10000, () => tab.evaluate('document.title === "evil"'));
  const again = await tab.evaluate(`fetch(${JSON.stringify(cors.base + '/v1/chat/completions')},
      { method: 'POST', mode: 'no-cors', body: new Blob([${JSON.stringify(CHAT)}]) })
    .then(() => 'answered (opaque)', (e) => 'rejected: ' + e.message)`, true);
  log(`evil origin against the cors gateway: ${again}`);
  if (await mockRequests() !== 1) fail('an origin not in cors.allow_origins reached the mock');

  await cdp.send('Browser.close').catch(() => {});
  await stop(chrome, 5000, 'SIGTERM');
  // the gateways and mocks must exit 0 without a sanitizer report
  for (const c of children) await stop(c);
  const bad = children.filter((c) => !c.group)
    .map((c) => judgeExit(c.name, c.proc.exitCode, c.proc.signalCode, c.out)).filter(Boolean);
  if (bad.length) fail(bad.join('\n'));
  evil.server.close();
  app.server.close();
  log('PASS');
  return 0;
}

run(main);
