// The live status page (GET /status) in headless Chromium, against the real
// meridian binary and the C mock upstream. No npm dependencies: Chromium is
// driven over the DevTools protocol on a pipe (--remote-debugging-pipe,
// fds 3 and 4, NUL-terminated JSON messages).
//
//   node tests/browser/status_page.mjs BUILD_DIR
//
// Environment: MERIDIAN_BIN and MOCK_BIN (set by CTest), CHROMIUM (default
// /usr/bin/chromium). Exit 0 pass, 1 fail (also when the daemon or a mock
// exits badly or prints a sanitizer report), 77 skipped (no Chromium).
//
// Two mocks serve providers of different vendors and jurisdictions (mistral
// in FR, openai in US); a third provider points at a refused port so its
// breaker opens; a fourth is disabled (its key variable is unset). After
// ~200 chat requests the page must list every provider (the broken one with
// data-state="open") and chart both vendors and both jurisdictions. The
// screenshots go to BUILD_DIR/status-page.png (and status-page-dark.png).
//
// Every wait is a poll with a deadline; a watchdog ends the whole test after
// 90 s; every process started is killed on every exit path (and gets
// SIGKILL from the kernel if this process dies, via setpriv --pdeathsig).
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  begin, childEnv, children, fail, guardExit, http, launchChromium, log, openTab, refusedPort,
  run, sleep, startListening, stop, until,
} from './lib.mjs';
import { judgeExit } from '../integration/harness.mjs';

const MERIDIAN = process.env.MERIDIAN_BIN;
const MOCK = process.env.MOCK_BIN;
const BUILD_DIR = process.argv[2] || (MERIDIAN ? dirname(MERIDIAN) : process.cwd());
const WATCHDOG_MS = 90000;
const PAGE_TIMEOUT_MS = 20000;
const UNSET_KEY_VAR = 'MERIDIAN_STATUS_TEST_UNSET_KEY';

let tmp = null;
guardExit();

// What the checks look at, read from the live DOM.
const DOM_FACTS = `(() => {
  const q = (sel) => Array.from(document.querySelectorAll(sel));
  const groups = (id) => q('#' + id + ' svg [data-group]').map((e) => e.getAttribute('data-group'));
  return {
    loaded: document.body ? document.body.getAttribute('data-loaded') : null,
    providers: q('#providers [data-provider]').map((e) => ({
      name: e.getAttribute('data-provider'), state: e.getAttribute('data-state') })),
    vendorSvg: !!document.querySelector('#chart-vendor svg'),
    jurisdictionSvg: !!document.querySelector('#chart-jurisdiction svg'),
    vendor: groups('chart-vendor'),
    jurisdiction: groups('chart-jurisdiction'),
    updated: (document.getElementById('updated') || {}).textContent || '',
    conn: (document.getElementById('conn-text') || {}).textContent || '',
  };
})()`;

// ------------------------------------------------------------------- test

async function main() {
  tmp = begin('meridian-status-page-', WATCHDOG_MS);
  if (!tmp) return 77;

  // Upstreams: two mocks, one refused port.
  const [mistralPort, openaiPort, deadPort] = await Promise.all([
    startListening('mock mistral', MOCK, ['--name', 'mistral']),
    startListening('mock openai', MOCK, ['--name', 'openai']),
    refusedPort(),
  ]);
  log(`mocks on ${mistralPort} (mistral) and ${openaiPort} (openai); refused port ${deadPort}`);

  const provider = (port, vendor, region, jurisdiction, key = 'sk-test') => ({
    kind: 'openai', base_url: `http://127.0.0.1:${port}/v1`, api_key: key, vendor, region, jurisdiction,
  });
  const cfg = {
    listen: '127.0.0.1:0',
    // The broken provider must open quickly and stay open for the test.
    health: { failure_threshold: 2, cooldown_ms: 120000 },
    retry_budget: { min_retries_per_s: 100000 },
    timeouts: { connect_ms: 1000, first_byte_ms: 5000, request_ms: 10000 },
    providers: {
      'mistral-eu': provider(mistralPort, 'mistral', 'eu', 'FR'),
      'openai-us': provider(openaiPort, 'openai', 'us', 'US'),
      'broken-de': provider(deadPort, 'acme', 'eu', 'DE'),
      'deepseek-cn': provider(openaiPort, 'deepseek', 'cn', 'CN', '${' + UNSET_KEY_VAR + '}'),
    },
    routes: {
      eu: { targets: [{ provider: 'broken-de', model: 'acme-1' }, { provider: 'mistral-eu', model: 'mistral-small' }] },
      us: { targets: [{ provider: 'openai-us', model: 'gpt-4o-mini' }] },
      any: { targets: [{ provider: 'broken-de', model: 'acme-1' }, { provider: 'openai-us', model: 'gpt-4o-mini' },
                       { provider: 'mistral-eu', model: 'mistral-small' }] },
    },
  };
  const cfgPath = join(tmp, 'meridian.json');
  writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  const gwPort = await startListening('meridian', MERIDIAN,
    ['--config', cfgPath, '--listen', '127.0.0.1:0', '--workers', '2'], childEnv({}, [UNSET_KEY_VAR]));
  const base = `http://127.0.0.1:${gwPort}`;
  log(`meridian on ${gwPort}`);

  // The endpoints exist and say what they are.
  const page = await http(`${base}/status`);
  if (page.status !== 200) fail(`GET /status: HTTP ${page.status} ${page.body.slice(0, 200)}`);
  if (!/text\/html/.test(page.headers.get('content-type') || '')) fail(`GET /status: content-type ${page.headers.get('content-type')}`);
  if (!page.body.includes('status.json')) fail('GET /status: the body is not the status page');
  const sj = await http(`${base}/status.json`);
  if (sj.status !== 200) fail(`GET /status.json: HTTP ${sj.status} ${sj.body.slice(0, 200)}`);
  JSON.parse(sj.body);

  // Traffic: ~200 chat requests in 8 rounds over ~3 s, 5 at a time, across
  // the three routes (the "eu" and "any" routes try broken-de first until
  // its breaker opens).
  const served = {};
  let ok = 0, sent = 0;
  const models = ['eu', 'us', 'any'];
  const one = async (i) => {
    const r = await http(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-client' },
      body: JSON.stringify({ model: models[i % 3], messages: [{ role: 'user', content: `hello ${i}` }] }),
    });
    sent++;
    if (r.status === 200) {
      ok++;
      const p = r.headers.get('x-meridian-provider') || '?';
      served[p] = (served[p] || 0) + 1;
    } else if (sent - ok <= 3) {
      log(`request ${i} (${models[i % 3]}): HTTP ${r.status} ${r.body.slice(0, 200)}`);
    }
  };
  const ROUNDS = 8, PER_ROUND = 25, CONCURRENCY = 5;
  for (let round = 0; round < ROUNDS; round++) {
    const roundStart = Date.now();
    for (let k = 0; k < PER_ROUND; k += CONCURRENCY) {
      const batch = [];
      for (let j = k; j < Math.min(k + CONCURRENCY, PER_ROUND); j++) batch.push(one(round * PER_ROUND + j));
      await Promise.all(batch);
    }
    if (round < ROUNDS - 1) await sleep(Math.max(0, 375 - (Date.now() - roundStart))); // pacing, not readiness
  }
  log(`sent ${sent} requests: ${ok} OK, served by ${JSON.stringify(served)}`);
  if (ok < sent * 0.95) fail(`only ${ok} of ${sent} requests succeeded`);
  if (!served['mistral-eu'] || !served['openai-us']) fail(`both live providers must serve traffic: ${JSON.stringify(served)}`);

  // The JSON agrees before the browser looks (clearer failures).
  const status = await until('broken-de open in /status.json', 10000, async () => {
    const r = await http(`${base}/status.json`);
    const d = JSON.parse(r.body);
    const b = (d.providers || []).find((p) => p.name === 'broken-de');
    return b && b.state === 'open' ? d : false;
  }, 200);
  log(`status.json: ${status.providers.map((p) => `${p.name}=${p.enabled ? p.state : 'disabled'}`).join(' ')}; ` +
      `vendors ${Object.keys(status.series.vendor).join(',')}; jurisdictions ${Object.keys(status.series.jurisdiction).join(',')}`);

  // Chromium, driven over the DevTools pipe.
  const { chrome, cdp } = await launchChromium(join(tmp, 'chromium-profile'), ['--window-size=1280,1000']);
  const { sessionId, sess, evaluate } = await openTab(cdp);
  const pageErrors = [];
  cdp.on((msg) => {
    if (msg.sessionId !== sessionId) return;
    if (msg.method === 'Runtime.exceptionThrown') {
      const d = msg.params.exceptionDetails;
      pageErrors.push(`exception: ${d.exception?.description || d.text} (line ${d.lineNumber})`);
    } else if (msg.method === 'Runtime.consoleAPICalled' && msg.params.type === 'error') {
      pageErrors.push(`console.error: ${msg.params.args.map((a) => a.value ?? a.description).join(' ')}`);
    }
  });
  await sess('Emulation.setDeviceMetricsOverride', { width: 1280, height: 1000, deviceScaleFactor: 1, mobile: false });
  const nav = await sess('Page.navigate', { url: `${base}/status` });
  if (nav.errorText) fail(`navigating to /status: ${nav.errorText}`);

  // Poll the DOM until every check holds (the page refreshes every 3 s).
  const names = Object.keys(cfg.providers);
  const problems = (f) => {
    const p = [];
    if (f.loaded !== '1') p.push(`body[data-loaded] is ${JSON.stringify(f.loaded)}`);
    for (const n of names) {
      const rows = f.providers.filter((x) => x.name === n);
      if (rows.length !== 1) p.push(`${rows.length} elements for provider ${n}`);
    }
    if (f.providers.length !== names.length) p.push(`${f.providers.length} provider elements for ${names.length} providers`);
    const state = (n) => (f.providers.find((x) => x.name === n) || {}).state;
    if (state('broken-de') !== 'open') p.push(`broken-de is ${state('broken-de')}, not open`);
    for (const n of ['mistral-eu', 'openai-us'])
      if (state(n) !== 'closed') p.push(`${n} is ${state(n)}, not closed`);
    if (!f.vendorSvg) p.push('no #chart-vendor svg');
    if (!f.jurisdictionSvg) p.push('no #chart-jurisdiction svg');
    if (f.vendor.length < 2) p.push(`${f.vendor.length} vendor groups`);
    if (f.jurisdiction.length < 2) p.push(`${f.jurisdiction.length} jurisdiction groups`);
    for (const g of ['mistral', 'openai']) if (!f.vendor.includes(g)) p.push(`no vendor group ${g}`);
    for (const g of ['FR', 'US']) if (!f.jurisdiction.includes(g)) p.push(`no jurisdiction group ${g}`);
    if (new Set(f.vendor).size !== f.vendor.length) p.push(`duplicate vendor groups ${f.vendor}`);
    if (new Set(f.jurisdiction).size !== f.jurisdiction.length) p.push(`duplicate jurisdiction groups ${f.jurisdiction}`);
    if (!/^Updated /.test(f.updated.trim())) p.push(`#updated says ${JSON.stringify(f.updated)}`);
    return p;
  };
  let facts = null, issues = ['nothing evaluated yet'];
  const deadline = Date.now() + PAGE_TIMEOUT_MS;
  while (Date.now() < deadline) {
    try {
      facts = await evaluate(DOM_FACTS);
      issues = problems(facts);
      if (!issues.length) break;
    } catch (e) {
      issues = [`evaluate: ${e.message}`];
    }
    await sleep(200);
  }
  if (issues.length) {
    if (facts) log(`DOM facts: ${JSON.stringify(facts)}`);
    if (pageErrors.length) log(`page errors:\n  ${pageErrors.join('\n  ')}`);
    fail(`the page did not render as expected within ${PAGE_TIMEOUT_MS / 1000} s:\n  ${issues.join('\n  ')}`);
  }
  log(`page rendered: ${facts.providers.map((p) => `${p.name}=${p.state}`).join(' ')}; ` +
      `vendor groups ${facts.vendor.join(',')}; jurisdiction groups ${facts.jurisdiction.join(',')}; "${facts.updated}"`);
  if (pageErrors.length) fail(`the page logged errors:\n  ${pageErrors.join('\n  ')}`);

  // Screenshots of the whole page, light then dark.
  const shoot = async (file) => {
    const m = await sess('Page.getLayoutMetrics');
    const height = Math.min(4000, Math.max(1000, Math.ceil((m.cssContentSize || m.contentSize).height)));
    await sess('Emulation.setDeviceMetricsOverride', { width: 1280, height, deviceScaleFactor: 1, mobile: false });
    await evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))', true);
    const shot = await sess('Page.captureScreenshot', { format: 'png' });
    writeFileSync(file, Buffer.from(shot.data, 'base64'));
    log(`screenshot ${file}`);
  };
  await shoot(join(BUILD_DIR, 'status-page.png'));
  await sess('Emulation.setEmulatedMedia', { features: [{ name: 'prefers-color-scheme', value: 'dark' }] });
  await shoot(join(BUILD_DIR, 'status-page-dark.png'));

  // Orderly shutdown: the browser first, then the daemon and the mocks, which
  // must exit 0 without a sanitizer report (tests/integration/harness.mjs).
  await cdp.send('Browser.close').catch(() => {});
  await stop(chrome, 5000, 'SIGTERM');
  for (const c of children) await stop(c);
  const bad = children.filter((c) => !c.group)
    .map((c) => judgeExit(c.name, c.proc.exitCode, c.proc.signalCode, c.out)).filter(Boolean);
  if (bad.length) fail(bad.join('\n'));
  log('PASS');
  return 0;
}

run(main);
