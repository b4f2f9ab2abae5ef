/** The tests' wait loop: it retries a probe that fails, and stops at once when waiting cannot help. */
import { PollGivesUp, pollUntil } from '../harness/net';

test('a probe that fails is tried again until it answers', async () => {
  let tries = 0;
  const value = await pollUntil(
    'the third try',
    async () => {
      tries++;
      if (tries < 3) throw new Error('not yet');
      return 'ready';
    },
    { timeoutMs: 5_000, intervalMs: 1 },
  );
  expect({ value, tries }).toEqual({ value: 'ready', tries: 3 });
});

test('a probe that gives up ends the wait at its first try, with its reason', async () => {
  let tries = 0;
  const waiting = pollUntil(
    'migration reaching awaiting-approval',
    async () => {
      tries++;
      throw new PollGivesUp('ended in rolled-back');
    },
    { timeoutMs: 60_000, intervalMs: 1 },
  );
  await expect(waiting).rejects.toThrow('migration reaching awaiting-approval: ended in rolled-back');
  expect(tries).toBe(1);
});

test('a probe that never answers ends in a timeout naming its last error', async () => {
  await expect(
    pollUntil(
      'nothing',
      async () => {
        throw new Error('refused');
      },
      { timeoutMs: 20, intervalMs: 1 },
    ),
  ).rejects.toThrow(/nothing: not ready after 20 ms \(last error: Error: refused\)/);
});
