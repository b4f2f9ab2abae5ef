/**
 * The plan file: one zod schema is the source of truth for validation, for the TypeScript type
 * the workflows receive, and for `schema/plan.schema.json` (editors). Key names are a contract.
 */
import { z } from 'zod';
import { DURATION_PATTERN } from './duration';

const id = (prefix: string, what: string) =>
  z.string().regex(new RegExp(`^${prefix}-[0-9a-f]{8,17}$`), `${what} like ${prefix}-0123456789abcdef0`);

const cidr = z
  .string()
  .refine(isCidr, 'an IPv4 CIDR such as 203.0.113.0/24 or 0.0.0.0/0');

export function isCidr(value: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  if (!m) return false;
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  return octets.every((o) => o <= 255) && bits <= 32;
}

const duration = z.string().regex(DURATION_PATTERN, 'a duration such as 5s, 10m, 2h or 7d');

const commands = z.array(z.string().min(1, 'a non-empty shell command')).default([]);

const instanceType = z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'an EC2 instance type such as g4dn.xlarge');

export const serviceSchema = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'a service name of [a-z0-9-]'),
  port: z.number().int().min(1).max(65535),
  healthPath: z.string().startsWith('/', 'an HTTP path starting with /').default('/'),
  public: z.boolean().default(false),
});

const httpCheck = {
  service: z.string().min(1),
  path: z.string().startsWith('/', 'an HTTP path starting with /'),
};

export const planSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, 'a name of [a-z0-9-], 1 to 63 characters'),
    region: z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, 'an AWS region such as ap-northeast-1'),
    source: z.strictObject({ instanceId: id('i', 'an instance id') }),
    elasticIp: z.strictObject({ allocationId: id('eipalloc', 'an Elastic IP allocation id') }),
    target: z
      .strictObject({
        instanceType,
        fallbackInstanceTypes: z.array(instanceType).default([]),
        market: z.enum(['spot', 'on-demand']).default('on-demand'),
        imageId: id('ami', 'an AMI id').optional(),
        imageParameter: z.string().regex(/^\/[\w.\-/]+$/, 'an SSM parameter name starting with /').optional(),
        subnetIds: z.array(id('subnet', 'a subnet id')).min(1, 'at least one subnet id'),
        securityGroupIds: z.array(id('sg', 'a security group id')).min(1, 'at least one security group id'),
        iamInstanceProfile: z.string().min(1).optional(),
        keyName: z.string().min(1).optional(),
        rootVolume: z
          .strictObject({
            sizeGiB: z.number().int().min(8).max(16384).default(30),
            type: z.enum(['gp3', 'gp2', 'io1', 'io2']).default('gp3'),
          })
          .default({ sizeGiB: 30, type: 'gp3' }),
      })
      .refine((t) => (t.imageId === undefined) !== (t.imageParameter === undefined), {
        message: 'exactly one of imageId or imageParameter',
        path: ['imageId'],
      }),
    remote: z
      .strictObject({ setup: commands, deploy: commands, build: commands, start: commands })
      .default({ setup: [], deploy: [], build: [], start: [] }),
    services: z.array(serviceSchema).min(1, 'at least one service'),
    ingress: z
      .strictObject({
        publicCidrs: z.array(cidr).default(['0.0.0.0/0']),
        adminCidrs: z.array(cidr).default([]),
        allowSshFromAnywhere: z.boolean().default(false),
        revokeUnplanned: z.boolean().default(false),
      })
      .default({ publicCidrs: ['0.0.0.0/0'], adminCidrs: [], allowSshFromAnywhere: false, revokeUnplanned: false }),
    checks: z
      .strictObject({
        host: z.string().min(1).default('auto'),
        voiceClone: z
          .strictObject({
            ...httpCheck,
            method: z.enum(['GET', 'POST', 'PUT']).default('POST'),
            body: z.unknown().default({}),
            maxSeconds: z.number().positive().default(2),
          })
          .optional(),
        latency: z
          .strictObject({
            ...httpCheck,
            samples: z.number().int().min(1).max(1000).default(5),
            maxAverageMs: z.number().positive().default(50),
            maxP95Ms: z.number().positive().optional(),
          })
          .optional(),
      })
      .default({ host: 'auto' }),
    approval: z
      .strictObject({
        timeout: duration.default('7d'),
        approvers: z.array(z.string().min(1)).default([]),
      })
      .default({ timeout: '7d', approvers: [] }),
    spot: z
      .strictObject({
        pollInterval: duration.default('5s'),
        interruptionQueueUrl: z.url().nullable().default(null),
      })
      .default({ pollInterval: '5s', interruptionQueueUrl: null }),
  })
  .superRefine((plan, ctx) => {
    const seenNames = new Map<string, number>();
    const seenPorts = new Map<number, number>();
    plan.services.forEach((s, i) => {
      if (seenNames.has(s.name)) {
        ctx.addIssue({ code: 'custom', path: ['services', i, 'name'], message: `a unique service name ('${s.name}' is also services[${seenNames.get(s.name)}])` });
      } else seenNames.set(s.name, i);
      if (seenPorts.has(s.port)) {
        ctx.addIssue({ code: 'custom', path: ['services', i, 'port'], message: `a unique port (${s.port} is also services[${seenPorts.get(s.port)}])` });
      } else seenPorts.set(s.port, i);
    });
    for (const key of ['voiceClone', 'latency'] as const) {
      const check = plan.checks[key];
      if (!check) continue;
      const svc = plan.services.find((s) => s.name === check.service);
      if (!svc) {
        ctx.addIssue({ code: 'custom', path: ['checks', key, 'service'], message: `the name of a service in services (got '${check.service}')` });
      } else if (!svc.public) {
        ctx.addIssue({ code: 'custom', path: ['checks', key, 'service'], message: `a public service ('${check.service}' is private and cannot be reached from outside)` });
      }
    }
    if (plan.ingress.adminCidrs.includes('0.0.0.0/0') && !plan.ingress.allowSshFromAnywhere) {
      ctx.addIssue({ code: 'custom', path: ['ingress', 'adminCidrs'], message: 'admin CIDRs narrower than 0.0.0.0/0 (set ingress.allowSshFromAnywhere: true to open SSH to the world on purpose)' });
    }
    if (new Set([plan.target.instanceType, ...plan.target.fallbackInstanceTypes]).size !== plan.target.fallbackInstanceTypes.length + 1) {
      ctx.addIssue({ code: 'custom', path: ['target', 'fallbackInstanceTypes'], message: 'instance types different from each other and from target.instanceType' });
    }
  });

/** A validated plan, with defaults filled in. Plain data: safe to pass into workflows. */
export type Plan = z.output<typeof planSchema>;
export type ServiceSpec = z.output<typeof serviceSchema>;
