// Helpers for the browser tests: child processes that never outlive the
// test, bounded polls, and headless Chromium driven over the DevTools
// protocol on a pipe (--remote-debugging-pipe: commands on fd 3, replies and
// events on fd 4, NUL-terminated JSON). No npm dependencies.
//
// Every process started is recorded; killAll() (on exit, SIGINT, SIGTERM)
// kills them, and each also gets SIGKILL from the kernel if this process
// dies (setpriv --pdeathsig when available).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SETPRIV = existsSync('/usr/bin/setpriv') ? '/usr/bin/setpriv' : null;
const START_TIMEOUT_MS = 10000;
const CDP_TIMEOUT_MS = 10000;

const t0 = Date.now();
export const children = []; // { proc, name, group, out }

export function log(msg) {
  process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);
}

export function fail(msg) {
  const err = new Error(msg);
  err.testFailure = true;
  throw err;
}

export function killAll(signal) {
  for (const c of children) {
    // A group (Chromium) is signalled even after its leader exited: helpers
    // may still be winding down.
    if (!c.group && (c.proc.exitCode !== null || c.proc.signalCode !== null)) continue;
    try {
      if (c.group) process.kill(-c.proc.pid, signal);
      else c.proc.kill(signal);
    } catch { /* already gone */ }
  }
}

let tmp = null;

// Kills every child on exit and on SIGINT/SIGTERM/SIGHUP, and removes the
// directory begin() made.
export function guardExit() {
  process.on('exit', () => {
    killAll('SIGKILL');
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      log(`got ${sig}: stopping`);
      process.exit(1);
    });
  }
}

export function dumpLogs() {
  for (const c of children) {
    if (!c.out) continue;
    const tail = c.out.split('\n').filter((l) => !/dbus|Fontconfig|ERROR:.*(bus|object_proxy)/.test(l))
      .slice(-25).join('\n');
    if (tail.trim()) process.stdout.write(`---- ${c.name} (last lines)\n${tail}\n`);
  }
}

// The start of a browser test: null when there is no Chromium (skip: exit
// 77), else a fresh temporary directory (removed on exit); the whole test is
// cut after watchdogMs.
export function begin(prefix, watchdogMs) {
  if (!existsSync(CHROMIUM)) {
    console.log(`chromium not found: apt-get install chromium (looked for ${CHROMIUM})`);
    return null;
  }
  if (!process.env.MERIDIAN_BIN || !process.env.MOCK_BIN) fail('MERIDIAN_BIN and MOCK_BIN must be set');
  const watchdog = setTimeout(() => {
    console.log(`FAIL: watchdog: the test took more than ${watchdogMs / 1000} s`);
    dumpLogs();
    process.exit(1);
  }, watchdogMs);
  watchdog.unref();
  tmp = mkdtempSync(join(tmpdir(), prefix));
  return tmp;
}

// Runs main() and exits 0/1/77 with what it returned or threw.
export function run(main) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.log(`FAIL: ${err.testFailure ? err.message : err.stack || err}`);
      dumpLogs();
      process.exit(1);
    },
  );
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() (async; truthy = done) every `every` ms until `ms` elapsed.
export async function until(what, ms, fn, every = 100) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) fail(`${what} not within ${ms} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(every);
  }
}

// The inherited environment without proxy variables (127.0.0.1 traffic must
// never go to a proxy), plus `extra`; `drop` names are removed.
export function childEnv(extra = {}, drop = []) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(http|https|all|ftp|no)_proxy$/i.test(k) || drop.includes(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

// Spawns cmd and records it for cleanup. Output is kept (the last 256 KiB)
// for failure reports.
export function start(name, cmd, args, { env, group = false, stdio } = {}) {
  const argv = SETPRIV ? ['--pdeathsig', 'SIGKILL', '--', cmd, ...args] : args;
  const proc = spawn(SETPRIV || cmd, argv, {
    env: env || childEnv(),
    detached: group,
    stdio: stdio || ['ignore', 'pipe', 'pipe'],
  });
  const c = { proc, name, group, out: '' };
  children.push(c);
  const keep = (d) => {
    c.out += d;
    if (c.out.length > 262144) c.out = c.out.slice(-262144);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  proc.on('error', (e) => { c.out += `\nspawn error: ${e.message}\n`; });
  return c;
}

// Starts a server and resolves with the port of its "listening on HOST:PORT"
// line (stdout or stderr) within START_TIMEOUT_MS.
export function startListening(name, cmd, args, env) {
  const c = start(name, cmd, args, { env });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not report its port in ${START_TIMEOUT_MS} ms:\n${c.out}`)),
      START_TIMEOUT_MS);
    const check = () => {
      const m = c.out.match(/listening on \S*:(\d+)\s/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    c.proc.stdout.on('data', check);
    c.proc.stderr.on('data', check);
    c.proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? sig}) before listening:\n${c.out}`));
    });
  });
}

// Stops a child: `signal`, then SIGKILL after `ms`. Resolves with its exit
// code (or the signal's name).
export async function stop(c, ms = 5000, signal = 'SIGTERM') {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return c.proc.exitCode ?? c.proc.signalCode;
  const exited = new Promise((r) => c.proc.once('exit', (code, sig) => r(code ?? sig)));
  try {
    if (c.group) process.kill(-c.proc.pid, signal);
    else c.proc.kill(signal);
  } catch { return c.proc.exitCode ?? c.proc.signalCode; }
  const timer = setTimeout(() => {
    try {
      if (c.group) process.kill(-c.proc.pid, 'SIGKILL');
      else c.proc.kill('SIGKILL');
    } catch { /* gone */ }
  }, ms);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

export function refusedPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function http(url, opts = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), opts.timeout || 15000);
  try {
    const r = await fetch(url, { ...opts, signal: ctl.signal });
    const body = await r.text();
    return { status: r.status, headers: r.headers, body };
  } finally {
    clearTimeout(timer);
  }
}

// ------------------------------------------------------ DevTools over a pipe

export class Cdp {
  constructor(proc) {
    this.out = proc.stdio[3]; // Chromium reads commands from fd 3
    this.in = proc.stdio[4];  // and writes replies/events to fd 4
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = [];
    this.closed = false;
    let buf = Buffer.alloc(0);
    this.in.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let i;
      while ((i = buf.indexOf(0)) >= 0) {
        const msg = buf.subarray(0, i).toString('utf8');
        buf = buf.subarray(i + 1);
        this.dispatch(JSON.parse(msg));
      }
    });
    const gone = () => {
      this.closed = true;
      for (const [, p] of this.pending) p.reject(new Error(`Chromium closed the pipe during ${p.method}`));
      this.pending.clear();
    };
    this.in.on('close', gone);
    this.in.on('error', gone);
    this.out.on('error', gone);
  }

  dispatch(msg) {
    if (msg.id !== undefined) {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
      else p.resolve(msg.result);
    } else {
      for (const l of this.listeners) l(msg);
    }
  }

  on(fn) { this.listeners.push(fn); }

  send(method, params = {}, sessionId = undefined) {
    if (this.closed) return Promise.reject(new Error(`Chromium is gone (${method})`));
    const id = this.nextId++;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer in ${CDP_TIMEOUT_MS} ms`));
      }, CDP_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer, method });
      this.out.write(JSON.stringify(msg) + '\0');
    });
  }
}

// Headless Chromium with a fresh profile in userDir and `extraArgs`; resolves
// with { chrome, cdp } once it answers over the pipe.
export async function launchChromium(userDir, extraArgs = []) {
  const chrome = start('chromium', CHROMIUM, [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
    '--remote-debugging-pipe', `--user-data-dir=${userDir}`, '--no-first-run',
    '--no-default-browser-check', '--disable-extensions', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--mute-audio', '--hide-scrollbars',
    '--no-proxy-server', ...extraArgs, 'about:blank',
  ], { group: true, stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'] });
  const cdp = new Cdp(chrome.proc);
  const exitedEarly = new Promise((_, reject) => chrome.proc.once('exit', (code, sig) =>
    reject(new Error(`chromium exited (${code ?? sig})`))));
  exitedEarly.catch(() => {});
  const version = await Promise.race([cdp.send('Browser.getVersion'), exitedEarly]);
  log(`${version.product} started`);
  return { chrome, cdp };
}

// A new tab: { sess(method, params), evaluate(expr, awaitPromise), navigate(url) }.
export async function openTab(cdp) {
  const { targetId } = await cdp.send('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: true });
  const sess = (method, params) => cdp.send(method, params, sessionId);
  await sess('Runtime.enable');
  await sess('Page.enable');
  const evaluate = async (expression, awaitPromise = false) => {
    const r = await sess('Runtime.evaluate', { expression, returnByValue: true, awaitPromise });
    if (r.exceptionDetails) throw new Error(r.exceptionDetails.exception?.description || r.exceptionDetails.text);
    return r.result.value;
  };
  const navigate = async (url) => {
    const nav = await sess('Page.navigate', { url });
    if (nav.errorText) fail(`navigating to ${url}: ${nav.errorText}`);
  };
  return { sessionId, sess, evaluate, navigate };
}
