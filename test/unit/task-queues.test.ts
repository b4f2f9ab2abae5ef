/** The migrations' task queue and the spot queue beside it, and which of them a worker polls. */
import { migrationTaskQueue, spotTaskQueue } from '../../src/shared/constants';
import { queuesToPoll } from '../../src/worker';

describe('task queues', () => {
  it('puts guardians and routers on <queue>-spot, whichever of the two asks', () => {
    expect(spotTaskQueue('ec2-gpu-migration')).toBe('ec2-gpu-migration-spot');
    expect(spotTaskQueue('ec2-gpu-migration-spot')).toBe('ec2-gpu-migration-spot');
    expect(migrationTaskQueue('ec2-gpu-migration-spot')).toBe('ec2-gpu-migration');
    expect(migrationTaskQueue('team-a')).toBe('team-a');
  });

  it('polls both by default, or one of them', () => {
    expect(queuesToPoll('team-a')).toEqual(['team-a', 'team-a-spot']);
    expect(queuesToPoll('team-a', 'migration')).toEqual(['team-a']);
    expect(queuesToPoll('team-a', 'spot')).toEqual(['team-a-spot']);
    // Named by its spot queue, a worker still serves the pair.
    expect(queuesToPoll('team-a-spot')).toEqual(['team-a', 'team-a-spot']);
  });
});
