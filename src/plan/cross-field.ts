/**
 * The plan's rules that span fields. They run even when other fields are wrong (so one pass
 * reports everything), and so look at the data defensively. Pure.
 */
import { durationMs, POSITIVE_DURATION } from './duration';

type Issue = { path: (string | number)[]; message: string };

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const DAY_MS = 24 * 3600_000;
const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export function crossFieldIssues(plan: Record<string, unknown>): Issue[] {
  const issues: Issue[] = [];
  const servicesValid = Array.isArray(plan.services) && plan.services.length > 0;
  const services = asArray(plan.services).filter(isRecord);

  const names = new Map<unknown, number>();
  const ports = new Map<unknown, number>();
  asArray(plan.services).forEach((s, i) => {
    if (!isRecord(s)) return;
    if (typeof s.name === 'string') {
      const first = names.get(s.name);
      if (first !== undefined)
        issues.push({
          path: ['services', i, 'name'],
          message: `a unique service name ('${s.name}' is also services[${first}])`,
        });
      else names.set(s.name, i);
    }
    if (typeof s.port === 'number') {
      const first = ports.get(s.port);
      if (first !== undefined)
        issues.push({ path: ['services', i, 'port'], message: `a unique port (${s.port} is also services[${first}])` });
      else ports.set(s.port, i);
      if (s.port === 22 && s.public === true) {
        issues.push({
          path: ['services', i, 'port'],
          message: 'a port other than 22 for a public service (SSH is opened only by ingress.adminCidrs)',
        });
      }
    }
  });

  const checks = isRecord(plan.checks) ? plan.checks : {};
  for (const key of ['voiceClone', 'latency'] as const) {
    const check = checks[key];
    if (!servicesValid || !isRecord(check) || typeof check.service !== 'string') continue;
    const svc = services.find((s) => s.name === check.service);
    if (!svc) {
      const known = services.map((s) => s.name).filter((n) => typeof n === 'string');
      issues.push({
        path: ['checks', key, 'service'],
        message: `the name of a service in services (${known.join(', ') || 'none'}); got '${check.service}'`,
      });
    } else if (svc.public === false || svc.public === undefined) {
      issues.push({
        path: ['checks', key, 'service'],
        message: `a public service ('${check.service}' is private: it cannot be reached from outside)`,
      });
    }
  }

  const ingress = isRecord(plan.ingress) ? plan.ingress : {};
  for (const key of ['publicCidrs', 'adminCidrs'] as const) {
    const seen = new Map<unknown, number>();
    asArray(ingress[key]).forEach((c, i) => {
      const first = seen.get(c);
      if (first !== undefined)
        issues.push({ path: ['ingress', key, i], message: `each CIDR once (${String(c)} is also ${key}[${first}])` });
      else seen.set(c, i);
    });
  }
  asArray(ingress.adminCidrs).forEach((c, i) => {
    if (c === '0.0.0.0/0' && ingress.allowSshFromAnywhere !== true) {
      issues.push({
        path: ['ingress', 'adminCidrs', i],
        message:
          'a CIDR narrower than 0.0.0.0/0 for SSH (set ingress.allowSshFromAnywhere: true to open SSH to the whole internet on purpose)',
      });
    }
  });

  if (isRecord(plan.target)) {
    const t = plan.target;
    const hasId = t.imageId !== undefined;
    const hasParam = t.imageParameter !== undefined;
    if (!hasId && !hasParam) {
      issues.push({
        path: ['target', 'imageId'],
        message: 'an AMI id in imageId, or an SSM parameter name in imageParameter (neither is set)',
      });
    } else if (hasId && hasParam) {
      issues.push({
        path: ['target', 'imageParameter'],
        message: 'only one of imageId and imageParameter (both are set)',
      });
    }
    const seen = new Map<unknown, number | 'main'>();
    if (typeof t.instanceType === 'string') seen.set(t.instanceType, 'main');
    asArray(t.fallbackInstanceTypes).forEach((type, i) => {
      const first = seen.get(type);
      if (first === 'main')
        issues.push({
          path: ['target', 'fallbackInstanceTypes', i],
          message: `an instance type other than target.instanceType (${String(type)})`,
        });
      else if (first !== undefined)
        issues.push({
          path: ['target', 'fallbackInstanceTypes', i],
          message: `each instance type once (${String(type)} is also fallbackInstanceTypes[${first}])`,
        });
      else seen.set(type, i);
    });
  }

  const spot = isRecord(plan.spot) ? plan.spot : {};
  if (typeof spot.pollInterval === 'string' && POSITIVE_DURATION.test(spot.pollInterval)) {
    const ms = durationMs(spot.pollInterval);
    if (ms < 1000 || ms > 120_000) {
      issues.push({
        path: ['spot', 'pollInterval'],
        message: `a poll interval from 1s to 2m (a Spot interruption gives two minutes' notice); got ${spot.pollInterval}`,
      });
    }
  }
  // Durations from 1s, and for wakeEvery up to a day (an idle guardian must wake daily to move onto new code).
  for (const [key, maxMs] of [
    ['standbyCheckInterval', Infinity],
    ['retryRoundAfter', Infinity],
    ['wakeEvery', DAY_MS],
  ] as const) {
    const value = spot[key];
    if (typeof value !== 'string' || !POSITIVE_DURATION.test(value)) continue;
    if (durationMs(value) < 1000)
      issues.push({ path: ['spot', key], message: `a duration of at least 1s; got ${value}` });
    else if (durationMs(value) > maxMs)
      issues.push({
        path: ['spot', key],
        message: `a duration of at most 1d (an idle guardian must wake daily to move onto new code); got ${value}`,
      });
  }
  if (spot.standby === 'warm' && isRecord(plan.target) && plan.target.market === 'on-demand') {
    issues.push({
      path: ['spot', 'standby'],
      message: 'none while target.market is on-demand (a warm spare stands by for a Spot instance)',
    });
  }
  if (typeof spot.interruptionQueueUrl === 'string' && typeof plan.region === 'string') {
    const m = /^https?:\/\/sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\//.exec(spot.interruptionQueueUrl);
    if (m && m[1] !== plan.region) {
      issues.push({
        path: ['spot', 'interruptionQueueUrl'],
        message: `a queue in the plan's region ${plan.region} (this one is in ${m[1]})`,
      });
    }
  }
  return issues;
}
