/**
 * Spot pools: which planned pools a replacement tries and in what order (placement score, then
 * price, then the plan), which interrupted pools it leaves out and for how long, how the launch
 * takes the ranking, and the test world's GetSpotPlacementScores as the EC2 reference has it.
 */
import { launchChoices, type LaunchTargets } from '../../src/shared/launch';
import { plannedPools, rankPools, stillAvoided, type RankedPool } from '../../src/shared/pools';
import { FEW_TYPES_SCORE, placementScores } from '../harness/placement';

const A = 'subnet-0aaaaaaaaaaaaaaaa';
const B = 'subnet-0bbbbbbbbbbbbbbbb';
const ZONE = { [A]: 'eu-west-1a', [B]: 'eu-west-1b' } as Record<string, string>;
const target: LaunchTargets = {
  instanceType: 'g4dn.xlarge',
  fallbackInstanceTypes: ['g5.xlarge'],
  market: 'spot',
  subnetIds: [A, B],
};
const pool = (instanceType: string, subnetId: string, extra: Partial<RankedPool> = {}): RankedPool => ({
  instanceType,
  subnetId,
  availabilityZone: ZONE[subnetId],
  ...extra,
});
const names = (pools: RankedPool[]) => pools.map((p) => `${p.instanceType}@${p.availabilityZone}`);

describe('plannedPools', () => {
  it('is every planned type in every planned subnet, types first, each with its zone', () => {
    expect(plannedPools(target, (id) => ZONE[id])).toEqual([
      pool('g4dn.xlarge', A),
      pool('g4dn.xlarge', B),
      pool('g5.xlarge', A),
      pool('g5.xlarge', B),
    ]);
  });

  it('leaves the zone out where the subnet is unknown', () => {
    expect(plannedPools({ ...target, fallbackInstanceTypes: [] }, () => undefined)).toEqual([
      { instanceType: 'g4dn.xlarge', subnetId: A },
      { instanceType: 'g4dn.xlarge', subnetId: B },
    ]);
  });
});

describe('rankPools', () => {
  const pools = [
    pool('g4dn.xlarge', A, { score: 3, pricePerHour: 0.2 }),
    pool('g4dn.xlarge', B, { score: 8, pricePerHour: 0.25 }),
    pool('g5.xlarge', A, { score: 3, pricePerHour: 0.18 }),
    pool('g5.xlarge', B, { score: 8, pricePerHour: 0.3 }),
  ];

  it('placement-score: the best-scored zone first, then the cheaper pool, then the plan order', () => {
    expect(names(rankPools(pools, 'placement-score', []).pools)).toEqual([
      'g4dn.xlarge@eu-west-1b',
      'g5.xlarge@eu-west-1b',
      'g5.xlarge@eu-west-1a',
      'g4dn.xlarge@eu-west-1a',
    ]);
  });

  it('price: the cheapest first, whatever the score', () => {
    expect(names(rankPools(pools, 'price', []).pools)).toEqual([
      'g5.xlarge@eu-west-1a',
      'g4dn.xlarge@eu-west-1a',
      'g4dn.xlarge@eu-west-1b',
      'g5.xlarge@eu-west-1b',
    ]);
  });

  it('plan: the plan order, scores and prices aside', () => {
    expect(rankPools(pools, 'plan', []).pools).toEqual(pools);
  });

  it('a zone not scored ranks below the scored ones; a pool with no price after the priced ones', () => {
    const unscored = [pool('g4dn.xlarge', A), pool('g5.xlarge', A, { score: 1 })];
    expect(names(rankPools(unscored, 'placement-score', []).pools)).toEqual([
      'g5.xlarge@eu-west-1a',
      'g4dn.xlarge@eu-west-1a',
    ]);
    const unpriced = [pool('g4dn.xlarge', A), pool('g5.xlarge', A, { pricePerHour: 0.9 })];
    expect(names(rankPools(unpriced, 'price', []).pools)).toEqual(['g5.xlarge@eu-west-1a', 'g4dn.xlarge@eu-west-1a']);
    // Neither scored nor priced: the plan's order stands.
    expect(rankPools([pool('g5.xlarge', B), pool('g4dn.xlarge', A)], 'placement-score', []).pools).toEqual([
      pool('g5.xlarge', B),
      pool('g4dn.xlarge', A),
    ]);
  });

  it('leaves out an interrupted pool, and says why, keeping the same type in other zones', () => {
    const at = '2026-12-06T10:00:00.000Z';
    const ranked = rankPools(pools, 'placement-score', [
      { instanceType: 'g4dn.xlarge', availabilityZone: 'eu-west-1b', at },
    ]);
    expect(names(ranked.pools)).toEqual(['g5.xlarge@eu-west-1b', 'g5.xlarge@eu-west-1a', 'g4dn.xlarge@eu-west-1a']);
    expect(ranked.skipped).toEqual([
      {
        pool: { instanceType: 'g4dn.xlarge', subnetId: B, availabilityZone: 'eu-west-1b' },
        reason: `interrupted at ${at}`,
      },
    ]);
  });

  it('leaves nothing when every pool was interrupted', () => {
    const at = '2026-12-06T10:00:00.000Z';
    const all = pools.map((p) => ({ instanceType: p.instanceType, availabilityZone: p.availabilityZone!, at }));
    expect(rankPools(pools, 'placement-score', all)).toMatchObject({ pools: [], skipped: expect.any(Array) });
  });
});

describe('stillAvoided', () => {
  const at = '2026-12-06T10:00:00.000Z';
  const p = { instanceType: 'g4dn.xlarge', availabilityZone: 'eu-west-1a', at };
  const t0 = Date.parse(at);

  it('keeps a pool for the window after its notice, and drops it after', () => {
    expect(stillAvoided([p], t0 + 179_999, 180_000)).toEqual([p]);
    expect(stillAvoided([p], t0 + 180_000, 180_000)).toEqual([]);
  });

  it('avoids nothing with a window of 0', () => {
    expect(stillAvoided([p], t0, 0)).toEqual([]);
  });
});

describe('launchChoices with ranked pools', () => {
  it('tries the ranked Spot pools in their order, then on-demand in the plan order', () => {
    expect(launchChoices({ target, spotPools: [{ instanceType: 'g5.xlarge', subnetId: B }] })).toEqual([
      { instanceType: 'g5.xlarge', subnetId: B, market: 'spot' },
      { instanceType: 'g4dn.xlarge', subnetId: A, market: 'on-demand' },
      { instanceType: 'g4dn.xlarge', subnetId: B, market: 'on-demand' },
      { instanceType: 'g5.xlarge', subnetId: A, market: 'on-demand' },
      { instanceType: 'g5.xlarge', subnetId: B, market: 'on-demand' },
    ]);
  });

  it('goes straight to on-demand when no Spot pool is left', () => {
    expect(launchChoices({ target, spotPools: [] }).map((c) => c.market)).toEqual([
      'on-demand',
      'on-demand',
      'on-demand',
      'on-demand',
    ]);
  });
});

describe("the test world's GetSpotPlacementScores", () => {
  const zones = [
    { zoneName: 'eu-west-1a', zoneId: 'euw1-az1', score: 9 },
    { zoneName: 'eu-west-1b', zoneId: 'euw1-az2' },
  ];
  const three = {
    'InstanceType.1': 'g4dn.xlarge',
    'InstanceType.2': 'g4dn.2xlarge',
    'InstanceType.3': 'g5.xlarge',
    TargetCapacity: '1',
    SingleAvailabilityZone: 'true',
  };
  const items = (xml: string) =>
    [...xml.matchAll(/<availabilityZoneId>([^<]+)<\/availabilityZoneId><score>(\d+)</g)].map((m) => [
      m[1],
      Number(m[2]),
    ]);

  it('scores each zone by its id, best first; a zone with no score set gets the default', () => {
    const answer = placementScores(three, 'eu-west-1', zones);
    expect(answer.ok).toBe(true);
    expect(items(answer.ok ? answer.xml : '')).toEqual([
      ['euw1-az1', 9],
      ['euw1-az2', 5],
    ]);
  });

  it('scores one or two instance types low, as the EC2 reference says', () => {
    const answer = placementScores(
      { 'InstanceType.1': 'g4dn.xlarge', TargetCapacity: '1', SingleAvailabilityZone: 'true' },
      'eu-west-1',
      zones,
    );
    expect(items(answer.ok ? answer.xml : '').every(([, s]) => Number(s) <= FEW_TYPES_SCORE)).toBe(true);
  });

  it('refuses a request without TargetCapacity, with a bad MaxResults, or with no types', () => {
    const { TargetCapacity: _capacity, ...noCapacity } = three;
    void _capacity;
    expect(placementScores(noCapacity, 'eu-west-1', zones)).toMatchObject({ ok: false, code: 'MissingParameter' });
    expect(placementScores({ ...three, MaxResults: '5' }, 'eu-west-1', zones)).toMatchObject({
      ok: false,
      code: 'InvalidParameterValue',
    });
    expect(placementScores({ TargetCapacity: '1' }, 'eu-west-1', zones)).toMatchObject({
      ok: false,
      code: 'MissingParameter',
    });
  });

  it('scores the region, not its zones, unless SingleAvailabilityZone is true', () => {
    const answer = placementScores({ ...three, SingleAvailabilityZone: 'false' }, 'eu-west-1', zones);
    expect(answer.ok && answer.xml).toContain('<item><region>eu-west-1</region><score>9</score></item>');
    expect(answer.ok && answer.xml).not.toContain('availabilityZoneId');
  });
});
