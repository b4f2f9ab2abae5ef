/**
 * Everything one integration test needs, in one call: its own AWS account behind a proxy, the
 * seeded old service, the app's stand-ins and a valid plan for them.
 *
 *   const s = await startScenario();
 *   afterAll(() => s.close());
 *   // s.clients for the code under test, s.direct for setup and checks, s.plan, s.world, s.proxy
 */
import type { AwsClients } from '../../src/aws/clients';
import type { Plan } from '../../src/plan/schema';
import { AwsProxy } from './aws-proxy';
import { motoEndpoint } from './env';
import { seedSource, testPlan, type PlanOverrides, type SeededSource, type SeedOptions } from './seed';
import { AppWorld, type WorldServiceSpec } from './world';

export interface ScenarioOptions {
  /** SDK attempts of `clients` (default 1: every injected error reaches the caller). */
  maxAttempts?: number;
  planOverrides?: PlanOverrides;
  seed?: Omit<SeedOptions, 'world'>;
  services?: readonly WorldServiceSpec[];
  startMarker?: string;
}

export interface Scenario {
  proxy: AwsProxy;
  /** Clients through the proxy: logged, faults apply. */
  clients: AwsClients;
  /** Clients through the proxy's side door: same account, not logged, no faults. */
  direct: AwsClients;
  world: AppWorld;
  source: SeededSource;
  plan: Plan;
  close(): Promise<void>;
}

export async function startScenario(options: ScenarioOptions = {}): Promise<Scenario> {
  const proxy = await AwsProxy.start({ target: motoEndpoint() });
  let world: AppWorld | undefined;
  try {
    world = await AppWorld.start({
      proxy,
      region: options.seed?.region,
      services: options.services,
      startMarker: options.startMarker,
    });
    const direct = proxy.clients({ bypass: true, maxAttempts: 3 });
    // The worker's calls are authorised by the policy `migration iam-policy --plan` prints for
    // each plan the test makes for this source.
    const source = {
      ...(await seedSource(direct, { ...options.seed, world })),
      grant: (p: Plan) => proxy.grantPlan(p),
    };
    const plan = testPlan(source, world.ports, options.planOverrides);
    const opened = world;
    return {
      proxy,
      clients: proxy.clients({ maxAttempts: options.maxAttempts ?? 1 }),
      direct,
      world: opened,
      source,
      plan,
      close: async () => {
        await opened.close();
        await proxy.close();
      },
    };
  } catch (err) {
    await world?.close();
    await proxy.close();
    throw err;
  }
}
