/** Jest global teardown: stops what global-setup.ts started, whatever the tests did. */
import { forgetHarnessServers, harnessServers, stopHarnessServers } from './global-setup';

export default async function globalTeardown(): Promise<void> {
  const servers = harnessServers();
  if (!servers) return;
  forgetHarnessServers();
  await stopHarnessServers(servers);
}
