/**
 * A guardian's ledger: how long the service ran on Spot and on on-demand, what that cost against
 * running on-demand all along, and how often each pool was interrupted. It is kept as closed
 * totals plus the segment serving now (one instance behind the Elastic IP, from when it took
 * it); the status adds the open segment up to the moment it is asked. Pure: workflow code
 * imports this file.
 */
import type { Market } from './launch';

/** The instance behind the Elastic IP now, and what it costs. */
export interface Segment {
  instanceId: string;
  market?: Market;
  instanceType?: string;
  availabilityZone?: string;
  /** When it took the Elastic IP (or the guardian started guarding it). */
  since: string;
  /** What it costs, USD/h (Spot: the price when it was launched; on-demand: the price table). */
  pricePerHour?: number;
  /** The on-demand price of its type, USD/h: what it would cost without Spot. */
  onDemandPerHour?: number;
}

export interface LedgerBook {
  /** Milliseconds served, by market, of the segments closed so far. */
  ms: { spot: number; onDemand: number; unknown: number };
  /** USD of the closed segments that had prices, and what they would have cost on-demand. */
  usd: { actual: number; allOnDemand: number };
  /** Milliseconds of closed segments without a price (left out of `usd`). */
  unpricedMs: number;
  /** Notices per pool (`g4dn.xlarge@us-east-2a`). */
  interruptions: Record<string, number>;
  current: Segment;
  /** With `spot.standby: warm`: the spare running now, from its launch. */
  spare?: Segment;
  /** Milliseconds and USD of spares closed so far (promoted, lost or replaced). */
  spareMs?: number;
  spareUsd?: number;
}

/** The ledger as the status shows it: the open segment counted up to `at`. */
export interface Ledger {
  at: string;
  /** `spare`: hours a warm spare ran beside the serving instance (not counted in the others). */
  hours: { spot: number; onDemand: number; unknown: number; spare: number };
  /**
   * USD: what was paid (the spares included), what on-demand all along would have cost (one
   * instance, no spare), the difference, and the spares' part of `actual`.
   */
  costUsd: { actual: number; allOnDemand: number; saved: number; spare: number };
  /** Hours the cost leaves out: segments whose price was not known. */
  unpricedHours: number;
  interruptions: Record<string, number>;
  current: Segment;
  spare?: Segment;
}

const HOUR_MS = 3_600_000;

export function openLedger(current: Segment): LedgerBook {
  return {
    ms: { spot: 0, onDemand: 0, unknown: 0 },
    usd: { actual: 0, allOnDemand: 0 },
    unpricedMs: 0,
    interruptions: {},
    current,
  };
}

/** Adds `segment`, served from its `since` until `untilMs`, to the closed totals. */
function close(book: LedgerBook, segment: Segment, untilMs: number): void {
  const ms = Math.max(0, untilMs - Date.parse(segment.since));
  const key = segment.market === 'spot' ? 'spot' : segment.market === 'on-demand' ? 'onDemand' : 'unknown';
  book.ms[key] += ms;
  const price =
    segment.market === 'on-demand' ? (segment.pricePerHour ?? segment.onDemandPerHour) : segment.pricePerHour;
  if (price === undefined || segment.onDemandPerHour === undefined) {
    book.unpricedMs += ms;
    return;
  }
  book.usd.actual += (price * ms) / HOUR_MS;
  book.usd.allOnDemand += (segment.onDemandPerHour * ms) / HOUR_MS;
}

/** The Elastic IP moved to `next` at `next.since`: the segment before it is closed. */
export function switchTo(book: LedgerBook, next: Segment): void {
  close(book, book.current, Date.parse(next.since));
  book.current = next;
}

/** A spare is running from `spare.since` (its launch). */
export function openSpare(book: LedgerBook, spare: Segment): void {
  book.spare = spare;
}

/** The spare ends (terminated, or promoted: the Elastic IP moved to it) at `untilMs`. */
export function closeSpare(book: LedgerBook, untilMs: number): void {
  if (!book.spare) return;
  const ms = Math.max(0, untilMs - Date.parse(book.spare.since));
  book.spareMs = (book.spareMs ?? 0) + ms;
  if (book.spare.pricePerHour === undefined) book.unpricedMs += ms;
  else book.spareUsd = (book.spareUsd ?? 0) + (book.spare.pricePerHour * ms) / HOUR_MS;
  book.spare = undefined;
}

/** A notice for an instance in `pool` (`type@zone`). */
export function countInterruption(book: LedgerBook, pool: string): void {
  book.interruptions[pool] = (book.interruptions[pool] ?? 0) + 1;
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

/** The ledger with the open segment counted up to `atMs`. */
export function ledgerAt(book: LedgerBook, atMs: number): Ledger {
  const view: LedgerBook = { ...book, ms: { ...book.ms }, usd: { ...book.usd } };
  close(view, book.current, atMs);
  closeSpare(view, atMs);
  const spareUsd = view.spareUsd ?? 0;
  const actual = view.usd.actual + spareUsd;
  return {
    at: new Date(atMs).toISOString(),
    hours: {
      spot: round(view.ms.spot / HOUR_MS, 3),
      onDemand: round(view.ms.onDemand / HOUR_MS, 3),
      unknown: round(view.ms.unknown / HOUR_MS, 3),
      spare: round((view.spareMs ?? 0) / HOUR_MS, 3),
    },
    costUsd: {
      actual: round(actual, 4),
      allOnDemand: round(view.usd.allOnDemand, 4),
      saved: round(view.usd.allOnDemand - actual, 4),
      spare: round(spareUsd, 4),
    },
    unpricedHours: round(view.unpricedMs / HOUR_MS, 3),
    interruptions: { ...book.interruptions },
    current: book.current,
    ...(book.spare ? { spare: book.spare } : {}),
  };
}

/** One line for people: hours by market, the cost against all-on-demand, the pools interrupted. */
export function describeLedger(l: Ledger): string {
  const pools = Object.entries(l.interruptions)
    .sort((a, b) => b[1] - a[1])
    .map(([pool, n]) => `${pool} ×${n}`);
  return (
    `${l.hours.spot} h on Spot, ${l.hours.onDemand} h on-demand` +
    (l.hours.unknown ? `, ${l.hours.unknown} h on an unknown market` : '') +
    (l.hours.spare ? `, ${l.hours.spare} h of warm spare ($${l.costUsd.spare.toFixed(2)})` : '') +
    `; $${l.costUsd.actual.toFixed(2)} against $${l.costUsd.allOnDemand.toFixed(2)} all on-demand (saved $${l.costUsd.saved.toFixed(2)})` +
    (l.unpricedHours ? `, ${l.unpricedHours} h unpriced` : '') +
    `; interruptions: ${pools.length ? pools.join(', ') : 'none'}`
  );
}
