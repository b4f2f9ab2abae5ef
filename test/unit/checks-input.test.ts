// The checks take their slice of the plan; a check scheduled by a run from before the slice
// carries the whole plan and must check exactly the same.
import { join } from 'node:path';
import { loadPlanFile } from '../../src/plan/load';
import { checksSpec, specOf } from '../../src/shared/checks';

describe('checks input', () => {
  it('reads an input with the whole plan as the same spec, and keeps a spec as it is', async () => {
    const plan = await loadPlanFile(join(__dirname, '..', '..', 'examples', 'video-message-app.yaml'));
    const spec = checksSpec(plan);
    expect(specOf({ plan })).toEqual(spec);
    expect(specOf({ spec })).toBe(spec);
  });

  it('holds the services and how they are checked, nothing else of the plan', async () => {
    const plan = await loadPlanFile(join(__dirname, '..', '..', 'examples', 'video-message-app.yaml'));
    const spec = checksSpec(plan);
    expect(Object.keys(spec).sort()).toEqual(['checks', 'region', 'services']);
    expect(spec.services).toEqual(plan.services);
    expect(spec.checks).toEqual({
      requestTimeoutSeconds: plan.checks.requestTimeoutSeconds,
      voiceClone: plan.checks.voiceClone,
      latency: plan.checks.latency,
    });
    expect(JSON.stringify(spec).length).toBeLessThan(JSON.stringify(plan).length / 2);
  });

  it('leaves out the tests the plan does not configure', async () => {
    const plan = await loadPlanFile(join(__dirname, '..', '..', 'examples', 'video-message-app.yaml'));
    const bare = { ...plan, checks: { ...plan.checks, voiceClone: undefined, latency: undefined } };
    expect(checksSpec(bare).checks).toEqual({ requestTimeoutSeconds: plan.checks.requestTimeoutSeconds });
  });
});
