import { DescribeSpotPriceHistoryCommand, type SpotPrice, type _InstanceType } from '@aws-sdk/client-ec2';
import { aws } from '../aws/call';
import type { AwsClients } from '../aws/clients';
import table from '../pricing/on-demand.json';
import type { Figure } from '../shared/migration';

export interface PriceFacts {
  instanceType: string;
  onDemandPerHour: Figure;
  spotPerHour: Figure;
  /** The same, per month of `hoursPerMonth` hours (missing in results of workers from before). */
  onDemandPerMonth?: Figure;
  spotPerMonth?: Figure;
  /** The date of the on-demand price table, and the hours it counts a month as. */
  priceTableDate?: string;
  hoursPerMonth?: number;
  spotAvailabilityZone?: string;
  spotTimestamp?: string;
}

/** A price per hour as a price per month of the table's hours. */
const perMonth = (f: Figure): Figure =>
  typeof f.value === 'number'
    ? { value: f.value * table.hoursPerMonth, unit: 'USD', source: f.source }
    : { value: null, unit: 'USD', source: f.source };

/** The newest price of each type in each zone of a DescribeSpotPriceHistory answer, by `type@zone`. */
export function newestSpotPrices(
  history: SpotPrice[] = [],
): Map<string, { instanceType: string; availabilityZone: string; price: number; at?: Date }> {
  const newest = new Map<string, { instanceType: string; availabilityZone: string; price: number; at?: Date }>();
  for (const h of history) {
    const instanceType = String(h.InstanceType);
    const availabilityZone = h.AvailabilityZone ?? '?';
    const key = `${instanceType}@${availabilityZone}`;
    const seen = newest.get(key);
    if (!seen || (h.Timestamp && seen.at && h.Timestamp > seen.at))
      newest.set(key, { instanceType, availabilityZone, price: Number(h.SpotPrice), at: h.Timestamp });
  }
  return newest;
}

/** The dated on-demand table, for what quotes it outside activities (`migration plan`). */
export const onDemandTable = {
  asOf: table.asOf,
  hoursPerMonth: table.hoursPerMonth,
  perHour: (region: string, instanceType: string): number | undefined =>
    (table.regions as Record<string, Record<string, number>>)[region]?.[instanceType],
};

export function onDemandPrice(region: string, instanceType: string): Figure {
  const price = (table.regions as Record<string, Record<string, number>>)[region]?.[instanceType];
  return price === undefined
    ? { value: null, unit: 'USD/h', source: 'price table' }
    : { value: price, unit: `USD/h (table of ${table.asOf})`, source: 'price table' };
}

export function createPricingActivities(clients: AwsClients) {
  /**
   * On-demand from the dated table in the repo; Spot from DescribeSpotPriceHistory: the lowest
   * current price among `availabilityZones` (the zones the plan can launch in), else the region's.
   */
  async function prices(input: {
    region: string;
    instanceTypes: string[];
    availabilityZones?: string[];
  }): Promise<PriceFacts[]> {
    const zones = new Set(input.availabilityZones ?? []);
    const out: PriceFacts[] = [];
    for (const instanceType of [...new Set(input.instanceTypes)]) {
      const history = await aws(`read Spot prices of ${instanceType}`, () =>
        clients.ec2(input.region).send(
          new DescribeSpotPriceHistoryCommand({
            InstanceTypes: [instanceType as _InstanceType],
            ProductDescriptions: ['Linux/UNIX'],
            StartTime: new Date(),
            MaxResults: 100,
          }),
        ),
      );
      // A zone the plan cannot launch in has a price the service will never pay.
      const latest = [...newestSpotPrices(history.SpotPriceHistory).values()].filter(
        (p) => zones.size === 0 || zones.has(p.availabilityZone),
      );
      const cheapest = latest.sort((a, b) => a.price - b.price)[0];
      const onDemandPerHour = onDemandPrice(input.region, instanceType);
      const spotPerHour: Figure = cheapest
        ? { value: cheapest.price, unit: 'USD/h', source: 'measured' }
        : { value: null, unit: 'USD/h', source: 'measured' };
      out.push({
        instanceType,
        onDemandPerHour,
        spotPerHour,
        onDemandPerMonth: perMonth(onDemandPerHour),
        spotPerMonth: perMonth(spotPerHour),
        priceTableDate: table.asOf,
        hoursPerMonth: table.hoursPerMonth,
        spotAvailabilityZone: cheapest?.availabilityZone,
        spotTimestamp: cheapest?.at?.toISOString(),
      });
    }
    return out;
  }
  return { prices };
}
