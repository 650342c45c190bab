// A node:test reporter that prints one line at the very end — how many tests ran, passed and failed, and
// how long it took — followed by the names of any that failed, so the result is seen without scrolling.
export default async function* summary(source) {
  const started = Date.now();
  let pass = 0;
  let fail = 0;
  let skip = 0;
  const failed = [];
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    if (event.data.details?.type === 'suite') continue;
    if (event.data.skip || event.data.todo) skip++;
    else if (event.type === 'test:pass') pass++;
    else {
      fail++;
      failed.push(`  ✗ ${event.data.name}${event.data.file ? ` (${event.data.file})` : ''}`);
    }
  }
  const s = Math.round((Date.now() - started) / 1000);
  const took = s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
  const line = `${fail === 0 ? 'PASS' : 'FAIL'}: ${pass + fail + skip} tests, ${pass} passed, ${fail} failed${skip ? `, ${skip} skipped` : ''} (${took})`;
  yield `\n${line}\n${failed.length ? `${failed.join('\n')}\n` : ''}`;
}
