/**
 * The order Jest starts test files in. Jest puts files it has no timing for (a fresh clone, as
 * in CI) in order of size, so the small file that runs the quick benchmark for minutes started
 * last and ran alone at the end. The slow files go first, slowest first (seconds measured on the
 * two-core CI machine); the rest follow in Jest's own order.
 */
const Sequencer = require('@jest/test-sequencer').default;

const SLOW_FIRST = [
  'integration/bench.test.ts', // ~440 s
  'integration/aws-semantics.test.ts', // ~320 s
  'integration/guardian.test.ts', // ~280 s
  'integration/reliability-crash.test.ts', // ~270 s
  'integration/guardian-scale.test.ts', // ~180 s
  'integration/failures.test.ts', // ~160 s
  'integration/spot-supervision.test.ts', // ~110 s
  'integration/reliability-faults.test.ts', // ~100 s
  'integration/spot-readiness.test.ts', // ~100 s
  'integration/cli.test.ts', // ~90 s
  'integration/approval.test.ts', // ~80 s
];

const rank = (path) => {
  const i = SLOW_FIRST.findIndex((name) => path.replace(/\\/g, '/').endsWith(`test/${name}`));
  return i < 0 ? SLOW_FIRST.length : i;
};

class SlowFirstSequencer extends Sequencer {
  sort(tests) {
    const byJest = super.sort([...tests]);
    const position = new Map(byJest.map((t, i) => [t, i]));
    return [...byJest].sort((a, b) => rank(a.path) - rank(b.path) || position.get(a) - position.get(b));
  }
}

module.exports = SlowFirstSequencer;
