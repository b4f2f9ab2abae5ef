/**
 * EC2's GetSpotPlacementScores, which moto does not serve, as the EC2 API reference describes it:
 * TargetCapacity is required (1 to 2,000,000,000), MaxResults is 10 to 1000, InstanceTypes and
 * InstanceRequirementsWithMetadata exclude each other, scores run from 1 to 10, only the top 10
 * zones (or regions) are returned, and one or two instance types "always" score low.
 */
import { randomUUID } from 'node:crypto';

export interface ZoneScore {
  zoneName: string;
  zoneId: string;
  /** Configured by a test; otherwise the world's default. */
  score?: number;
}

/** A zone's score when a test set none. */
export const DEFAULT_PLACEMENT_SCORE = 5;
/** The most a request for one or two types (or variations of one) scores. */
export const FEW_TYPES_SCORE = 2;

export type PlacementAnswer = { ok: true; xml: string } | { ok: false; code: string; message: string };

/** `params`: the query form as sent (`InstanceType.1`, `TargetCapacity`, …); `zones`: the region's. */
export function placementScores(
  params: Record<string, unknown>,
  region: string,
  zones: readonly ZoneScore[],
): PlacementAnswer {
  const list = (prefix: string) =>
    Object.keys(params)
      .filter((k) => k.startsWith(`${prefix}.`))
      .sort((a, b) => Number(a.slice(prefix.length + 1)) - Number(b.slice(prefix.length + 1)))
      .map((k) => String(params[k]));
  const types = list('InstanceType');
  const requirements = Object.keys(params).some((k) => k.startsWith('InstanceRequirementsWithMetadata.'));
  if (params.TargetCapacity === undefined)
    return { ok: false, code: 'MissingParameter', message: 'The request must contain the parameter TargetCapacity' };
  const capacity = Number(params.TargetCapacity);
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > 2_000_000_000)
    return {
      ok: false,
      code: 'InvalidParameterValue',
      message: `Value (${String(params.TargetCapacity)}) for parameter targetCapacity is invalid. It must be between 1 and 2000000000.`,
    };
  if (params.MaxResults !== undefined) {
    const max = Number(params.MaxResults);
    if (!Number.isInteger(max) || max < 10 || max > 1000)
      return {
        ok: false,
        code: 'InvalidParameterValue',
        message: `Value (${String(params.MaxResults)}) for parameter maxResults is invalid. It must be between 10 and 1000.`,
      };
  }
  if (types.length > 0 && requirements)
    return {
      ok: false,
      code: 'InvalidParameterCombination',
      message: 'You can specify either InstanceTypes or InstanceRequirementsWithMetadata, not both.',
    };
  if (types.length === 0 && !requirements)
    return {
      ok: false,
      code: 'MissingParameter',
      message: 'You must specify either InstanceTypes or InstanceRequirementsWithMetadata.',
    };
  const regions = list('RegionName');
  const few = types.length > 0 && new Set(types).size < 3;
  const scoreOf = (z: ZoneScore) => {
    const s = Math.min(10, Math.max(1, z.score ?? DEFAULT_PLACEMENT_SCORE));
    return few ? Math.min(s, FEW_TYPES_SCORE) : s;
  };
  const items: string[] = [];
  if (regions.length === 0 || regions.includes(region)) {
    if (params.SingleAvailabilityZone === 'true') {
      const top = [...zones].sort((a, b) => scoreOf(b) - scoreOf(a)).slice(0, 10);
      for (const z of top)
        items.push(
          `<item><region>${region}</region><availabilityZoneId>${z.zoneId}</availabilityZoneId><score>${scoreOf(z)}</score></item>`,
        );
    } else if (zones.length > 0) {
      // Scored as a region: a fleet that may use every zone does as well as the best of them.
      items.push(`<item><region>${region}</region><score>${Math.max(...zones.map(scoreOf))}</score></item>`);
    }
  }
  return {
    ok: true,
    xml:
      `<?xml version="1.0" encoding="UTF-8"?>\n<GetSpotPlacementScoresResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` +
      `<requestId>${randomUUID()}</requestId><spotPlacementScoreSet>${items.join('')}</spotPlacementScoreSet>` +
      `</GetSpotPlacementScoresResponse>`,
  };
}
