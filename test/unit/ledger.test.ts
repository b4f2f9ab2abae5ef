/**
 * The guardian's ledger: hours by market, the cost against all-on-demand, interruptions per
 * pool, with the segment serving now counted up to the moment asked.
 */
import {
  closeSpare,
  countInterruption,
  describeLedger,
  ledgerAt,
  openLedger,
  openSpare,
  switchTo,
} from '../../src/shared/ledger';

const T0 = Date.parse('2026-12-06T00:00:00.000Z');
const at = (hours: number) => new Date(T0 + hours * 3_600_000).toISOString();

describe('ledger', () => {
  it('counts the open segment up to the moment asked, priced by its market', () => {
    const book = openLedger({
      instanceId: 'i-1',
      market: 'spot',
      since: at(0),
      pricePerHour: 0.2,
      onDemandPerHour: 0.5,
    });
    expect(ledgerAt(book, T0 + 2 * 3_600_000)).toMatchObject({
      hours: { spot: 2, onDemand: 0, unknown: 0, spare: 0 },
      costUsd: { actual: 0.4, allOnDemand: 1, saved: 0.6, spare: 0 },
      unpricedHours: 0,
    });
    // Asking changes nothing kept.
    expect(book.ms.spot).toBe(0);
  });

  it('closes a segment when the Elastic IP moves, at the moment it moved', () => {
    const book = openLedger({
      instanceId: 'i-1',
      market: 'spot',
      since: at(0),
      pricePerHour: 0.2,
      onDemandPerHour: 0.5,
    });
    switchTo(book, { instanceId: 'i-2', market: 'on-demand', since: at(10), onDemandPerHour: 0.6 });
    switchTo(book, { instanceId: 'i-3', market: 'spot', since: at(11), pricePerHour: 0.25, onDemandPerHour: 0.5 });
    const l = ledgerAt(book, T0 + 12 * 3_600_000);
    expect(l.hours).toEqual({ spot: 11, onDemand: 1, unknown: 0, spare: 0 });
    // 10 h × 0.2 + 1 h × 0.6 (on-demand: its on-demand price) + 1 h × 0.25
    expect(l.costUsd.actual).toBeCloseTo(2.85, 6);
    expect(l.costUsd.allOnDemand).toBeCloseTo(10 * 0.5 + 0.6 + 0.5, 6);
    expect(l.costUsd.saved).toBeCloseTo(6.1 - 2.85, 6);
    expect(l.current.instanceId).toBe('i-3');
  });

  it('keeps hours it cannot price out of the cost, and says how many', () => {
    const book = openLedger({ instanceId: 'i-1', since: at(0) });
    switchTo(book, { instanceId: 'i-2', market: 'spot', since: at(3), pricePerHour: 0.2, onDemandPerHour: 0.5 });
    const l = ledgerAt(book, T0 + 4 * 3_600_000);
    expect(l.hours).toEqual({ spot: 1, onDemand: 0, unknown: 3, spare: 0 });
    expect(l.unpricedHours).toBe(3);
    expect(l.costUsd).toEqual({ actual: 0.2, allOnDemand: 0.5, saved: 0.3, spare: 0 });
  });

  it('counts interruptions per pool, and says it all in one line', () => {
    const book = openLedger({
      instanceId: 'i-1',
      market: 'spot',
      since: at(0),
      pricePerHour: 0.2,
      onDemandPerHour: 0.5,
    });
    countInterruption(book, 'g4dn.xlarge@us-east-2a');
    countInterruption(book, 'g5.xlarge@us-east-2b');
    countInterruption(book, 'g4dn.xlarge@us-east-2a');
    const l = ledgerAt(book, T0 + 3_600_000);
    expect(l.interruptions).toEqual({ 'g4dn.xlarge@us-east-2a': 2, 'g5.xlarge@us-east-2b': 1 });
    expect(describeLedger(l)).toBe(
      '1 h on Spot, 0 h on-demand; $0.20 against $0.50 all on-demand (saved $0.30); interruptions: g4dn.xlarge@us-east-2a ×2, g5.xlarge@us-east-2b ×1',
    );
  });

  it('counts a warm spare apart: its hours, and its cost in what was paid but not in all-on-demand', () => {
    const book = openLedger({
      instanceId: 'i-1',
      market: 'spot',
      since: at(0),
      pricePerHour: 0.2,
      onDemandPerHour: 0.5,
    });
    openSpare(book, { instanceId: 'i-s1', market: 'spot', since: at(1), pricePerHour: 0.3, onDemandPerHour: 0.5 });
    // The open spare counts up to the moment asked: 1 h × 0.3.
    expect(ledgerAt(book, T0 + 2 * 3_600_000)).toMatchObject({
      hours: { spot: 2, spare: 1 },
      costUsd: { actual: 0.7, allOnDemand: 1, spare: 0.3 },
      spare: { instanceId: 'i-s1' },
    });
    // Promoted at 4 h: its 3 h as spare end, and it serves from then on.
    closeSpare(book, T0 + 4 * 3_600_000);
    switchTo(book, { instanceId: 'i-s1', market: 'spot', since: at(4), pricePerHour: 0.3, onDemandPerHour: 0.5 });
    openSpare(book, { instanceId: 'i-s2', market: 'spot', since: at(5), pricePerHour: 0.25, onDemandPerHour: 0.5 });
    const l = ledgerAt(book, T0 + 6 * 3_600_000);
    expect(l.hours).toEqual({ spot: 6, onDemand: 0, unknown: 0, spare: 4 });
    // Serving: 4 h × 0.2 + 2 h × 0.3; spares: 3 h × 0.3 + 1 h × 0.25.
    expect(l.costUsd.spare).toBeCloseTo(1.15, 6);
    expect(l.costUsd.actual).toBeCloseTo(0.8 + 0.6 + 1.15, 6);
    expect(l.costUsd.allOnDemand).toBeCloseTo(3, 6);
    expect(describeLedger(l)).toContain('6 h on Spot, 0 h on-demand, 4 h of warm spare ($1.15);');
  });
});
