// The judgement of harness.h ("Exits are judged") for the Node.js tests (the
// SDK suites, the browser test): a process they started fails the test when
// it exits with a status other than the expected one (0), dies by a signal,
// or printed a sanitizer report (ASan, LSan, UBSan, TSan) -- the same marks
// as th_sanitizer_report in harness_proc.c.

const MARKS = [
  'ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'WARNING: ThreadSanitizer',
  'ERROR: ThreadSanitizer', 'ERROR: UndefinedBehaviorSanitizer', ': runtime error: ',
];

// The sanitizer report in `text`, from its first line on (at most 16 KiB), or null.
export function sanitizerReport(text) {
  let first = -1;
  for (const m of MARKS) {
    const at = text.indexOf(m);
    if (at >= 0 && (first < 0 || at < first)) first = at;
  }
  if (first < 0) return null;
  const line = text.lastIndexOf('\n', first) + 1;
  return text.slice(line, line + 16384);
}

// null when `name` ended well, else why not (with its report or output's end).
export function judgeExit(name, code, signal, output = '', expect = 0) {
  const report = sanitizerReport(output);
  if (code === expect && !signal && !report) return null;
  const how = signal ? `was killed by ${signal}` : `exited with status ${code}, expected ${expect}`;
  return `${name} ${how}${report ? ' and printed a sanitizer report' : ''}:\n` +
    (report || output.slice(-4096));
}
