/**
 * The router's book of queues: each queue's health and the guardians that registered it. Pure:
 * the router tells the owners when a queue starts or stops failing.
 */
import type { QueueHealth, QueueHealthNotice, RouterCarried } from '../../shared/spot';

type Entry = QueueHealth & { owners: string[] };

/** A change the owners are told of: a queue that started failing, or that reads again. */
export interface HealthChange {
  owners: string[];
  notice: QueueHealthNotice;
}

export class QueueBook {
  private readonly entries: Map<string, Entry>;

  constructor(urls: Iterable<string>, carried: RouterCarried['queues'] = {}) {
    this.entries = new Map(Object.entries(carried).map(([url, e]) => [url, { ...e, owners: [...e.owners] }]));
    for (const url of urls) this.add(url);
  }

  get urls(): string[] {
    return [...this.entries.keys()];
  }

  has(url: string): boolean {
    return this.entries.has(url);
  }

  /** Adds a queue (and its owner); a new owner of a failing queue is told at once. */
  add(url: string, owner?: string): HealthChange | undefined {
    let entry = this.entries.get(url);
    if (!entry) {
      entry = { queueUrl: url, ok: true, failures: 0, owners: [] };
      this.entries.set(url, entry);
    }
    if (!owner || entry.owners.includes(owner)) return undefined;
    entry.owners.push(owner);
    return entry.ok ? undefined : { owners: [owner], notice: noticeOf(entry) };
  }

  /** A read that worked: a failing queue is healthy again, and its owners are told. */
  readOk(url: string, at: string): HealthChange | undefined {
    const entry = this.entries.get(url);
    if (!entry) return undefined;
    const wasFailing = !entry.ok;
    Object.assign(entry, { ok: true, failures: 0, lastReadAt: at, error: undefined, since: undefined });
    return wasFailing ? { owners: [...entry.owners], notice: noticeOf(entry) } : undefined;
  }

  /** A read that failed for good: the first failure in a row tells the owners. */
  readFailed(url: string, error: string, at: string): HealthChange | undefined {
    const entry = this.entries.get(url);
    if (!entry) return undefined;
    const first = entry.ok;
    Object.assign(entry, { ok: false, failures: entry.failures + 1, error, since: entry.since ?? at });
    return first ? { owners: [...entry.owners], notice: noticeOf(entry) } : undefined;
  }

  list(): QueueHealth[] {
    return [...this.entries.values()].map(({ owners: _owners, ...health }) => dropUndefined(health));
  }

  carried(): NonNullable<RouterCarried['queues']> {
    return Object.fromEntries(
      [...this.entries].map(([url, e]) => [url, dropUndefined({ ...e, owners: [...e.owners] })]),
    );
  }
}

function noticeOf(e: Entry): QueueHealthNotice {
  return dropUndefined({ queueUrl: e.queueUrl, ok: e.ok, error: e.error, since: e.since });
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
