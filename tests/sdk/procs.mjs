// The processes an SDK suite starts (the mock upstream, meridian): started
// with a bounded wait for their "listening on" line, stopped with SIGTERM and
// judged (tests/integration/harness.mjs): a non-zero exit or a sanitizer
// report fails the suite, from its `after` hook.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { judgeExit } from '../integration/harness.mjs';

const START_MS = 10000;
const STOP_MS = 10000;
const procs = [];

// Starts a process and resolves with the port from its "listening on" line,
// within START_MS.
export function startAndWait(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const entry = { cmd, p, out: '', exited: new Promise((r) => p.once('exit', (code, sig) => r([code, sig]))) };
    procs.push(entry);
    const timer = setTimeout(() => reject(new Error(`${cmd} not ready in ${START_MS / 1000} s:\n${entry.out}`)), START_MS);
    const onData = (d) => {
      entry.out += d;
      if (entry.out.length > 1 << 20) entry.out = entry.out.slice(-(1 << 19));
      const m = entry.out.match(/listening on \S*:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('exit', (code) => reject(new Error(`${cmd} exited with ${code}:\n${entry.out}`)));
  });
}

// SIGTERM to every process (SIGKILL after STOP_MS), then throws when any of
// them ended badly.
export async function stopAll() {
  const bad = [];
  for (const e of procs) {
    if (e.p.exitCode === null && e.p.signalCode === null) e.p.kill('SIGTERM');
    const timer = setTimeout(() => e.p.kill('SIGKILL'), STOP_MS);
    const [code, sig] = await e.exited;
    clearTimeout(timer);
    const why = judgeExit(e.cmd, code, sig, e.out);
    if (why) bad.push(why);
  }
  procs.length = 0;
  if (bad.length) throw new Error(bad.join('\n'));
}

// Runs a client tool to its end within `ms` (killed past it, a rejection
// naming it): { code, stdout, stderr }.
export function runBounded(name, cmd, args, options, ms) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${name} did not finish in ${ms / 1000} s:\n${stdout}\n${stderr}`));
    }, ms);
    p.on('error', (e) => { clearTimeout(timer); reject(e); });
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

// The audit file's records, parsed.
export function auditRecords(path) {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

// The audit records after the first `from`, once there are n of them (the
// writer is asynchronous): a bounded poll.
export async function auditAfter(path, from, n) {
  for (let i = 0; i < 100; i++) {
    const recs = auditRecords(path).slice(from);
    if (recs.length >= n) return recs;
    await new Promise((r) => setTimeout(r, 50));
  }
  return auditRecords(path).slice(from);
}
