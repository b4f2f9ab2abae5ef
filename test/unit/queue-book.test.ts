import { QueueBook } from '../../src/workflows/router/queues';

const Q = 'https://sqs.us-east-1.amazonaws.com/123456789012/spot-events';
const AT = '2026-01-01T00:00:00.000Z';
const LATER = '2026-01-01T00:05:00.000Z';

test('a new queue is healthy and tells nobody; its owners are kept once each', () => {
  const book = new QueueBook([Q]);
  expect(book.add(Q, 'spot-guardian-a')).toBeUndefined();
  expect(book.add(Q, 'spot-guardian-a')).toBeUndefined();
  expect(book.list()).toEqual([{ queueUrl: Q, ok: true, failures: 0 }]);
  expect(book.carried()[Q].owners).toEqual(['spot-guardian-a']);
});

test('the first failure in a row tells the owners; the next ones count but tell nobody', () => {
  const book = new QueueBook([]);
  book.add(Q, 'spot-guardian-a');
  book.add(Q, 'spot-guardian-b');
  expect(book.readFailed(Q, 'Access to the queue is denied', AT)).toEqual({
    owners: ['spot-guardian-a', 'spot-guardian-b'],
    notice: { queueUrl: Q, ok: false, error: 'Access to the queue is denied', since: AT },
  });
  expect(book.readFailed(Q, 'still denied', LATER)).toBeUndefined();
  expect(book.list()).toEqual([{ queueUrl: Q, ok: false, failures: 2, error: 'still denied', since: AT }]);
});

test('a read that works after failures tells the owners the queue is healthy again', () => {
  const book = new QueueBook([Q]);
  book.add(Q, 'spot-guardian-a');
  book.readFailed(Q, 'denied', AT);
  expect(book.readOk(Q, LATER)).toEqual({ owners: ['spot-guardian-a'], notice: { queueUrl: Q, ok: true } });
  expect(book.readOk(Q, LATER)).toBeUndefined();
  expect(book.list()).toEqual([{ queueUrl: Q, ok: true, failures: 0, lastReadAt: LATER }]);
});

test('an owner that registers a failing queue is told at once', () => {
  const book = new QueueBook([Q]);
  book.readFailed(Q, 'denied', AT);
  expect(book.add(Q, 'spot-guardian-late')).toEqual({
    owners: ['spot-guardian-late'],
    notice: { queueUrl: Q, ok: false, error: 'denied', since: AT },
  });
});

test('health and owners carry over to the next run', () => {
  const book = new QueueBook([Q]);
  book.add(Q, 'spot-guardian-a');
  book.readFailed(Q, 'denied', AT);
  const next = new QueueBook([Q], JSON.parse(JSON.stringify(book.carried())));
  expect(next.list()).toEqual(book.list());
  expect(next.readOk(Q, LATER)?.owners).toEqual(['spot-guardian-a']);
});

test('reads of a queue it does not know change nothing', () => {
  const book = new QueueBook([]);
  expect(book.readFailed(Q, 'x', AT)).toBeUndefined();
  expect(book.readOk(Q, AT)).toBeUndefined();
  expect(book.urls).toEqual([]);
});
