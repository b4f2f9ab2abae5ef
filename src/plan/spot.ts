/**
 * The plan's `spot` section: how the Spot instance is guarded and replaced. Part of the plan
 * schema (`schema.ts`); the same rules for messages apply. Pure.
 */
import { z } from 'zod';
import { duration, durationOrZero } from './fields';

export const spotSchema = z
  .strictObject({
    pollInterval: duration('How often the instance state is polled, from 1s to 2m').default('5s'),
    interruptionQueueUrl: z
      .url({
        protocol: /^https?$/,
        error: 'an SQS queue URL such as https://sqs.ap-northeast-1.amazonaws.com/123456789012/spot-events',
      })
      .nullable()
      .describe(
        'SQS queue that EventBridge feeds with Spot interruption, rebalance and state-change events; null: polling only',
      )
      .default(null),
    keepGoldenImages: z
      .number({ error: 'a whole number of golden images from 1 to 100' })
      .int('a whole number of golden images from 1 to 100')
      .min(1, 'a whole number of golden images from 1 to 100')
      .max(100, 'a whole number of golden images from 1 to 100')
      .describe(
        'Golden images of this plan kept (newest first, the one in use always); older ones are deregistered with their snapshots',
      )
      .default(3),
    avoidInterruptedPoolFor: durationOrZero(
      'After a notice, a replacement skips the pool (instance type in an availability zone) of the instance it replaces for this long; 0s = never skip',
    ).default('3m'),
    revertAfter: durationOrZero(
      'After a fallback to on-demand, try Spot again this often: a Spot replacement, fully checked, takes the Elastic IP before the on-demand instance goes; 0s = never',
    ).default('1h'),
    retryRoundAfter: duration(
      'After a replacement round in which every try failed, the guardian tries again this much later (capacity or the app may come back)',
    ).default('1m'),
    wakeEvery: duration(
      'An idle guardian wakes this often (at most 1d) and starts a fresh run: it makes sure the router runs, and moves onto a newly deployed version of the code',
    ).default('1d'),
    standby: z
      .enum(['none', 'warm'], {
        error:
          'one of none (a replacement is launched when a notice comes) or warm (a spare from the golden image runs, checked, in another pool, and takes the Elastic IP on a notice)',
      })
      .describe(
        'none: a notice launches a replacement; warm: a checked spare runs from the golden image in another Spot pool and takes the Elastic IP at once on a notice (it costs a second instance)',
      )
      .default('none'),
    standbyCheckInterval: duration(
      'With standby: warm, how often the spare is fully checked (every service and the voice clone); one that fails is replaced',
    ).default('5m'),
    poolOrder: z
      .enum(['placement-score', 'price', 'plan'], {
        error:
          "one of placement-score (Spot placement score, then price), price (cheapest first) or plan (the plan's own order: types, then subnets)",
      })
      .describe(
        'How a replacement orders its Spot pools (the planned types across the planned subnets): placement-score, price, or plan',
      )
      .default('placement-score'),
  })
  .describe('Spot guarding, when target.market is spot')
  .default({
    pollInterval: '5s',
    interruptionQueueUrl: null,
    keepGoldenImages: 3,
    avoidInterruptedPoolFor: '3m',
    revertAfter: '1h',
    retryRoundAfter: '1m',
    wakeEvery: '1d',
    standby: 'none',
    standbyCheckInterval: '5m',
    poolOrder: 'placement-score',
  });
