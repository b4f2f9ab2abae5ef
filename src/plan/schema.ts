/**
 * The plan file: one zod schema is the source of truth for validation, for the TypeScript type
 * the workflows receive, and for `schema/plan.schema.json` (editors). Key names are a contract.
 *
 * Every message below is phrased as what was expected, because the loader prints it as
 * "<field>: expected <message>". Pure: workflows import the types, and may import the schema.
 */
import { z } from 'zod';
import { durationMs } from './duration';

// ---------------------------------------------------------------------------------------------
// Building blocks

const awsId = (prefix: string, what: string, description: string) =>
  z
    .string()
    .regex(new RegExp(`^${prefix}-[0-9a-f]{8,17}$`), `${what} like ${prefix}-0123456789abcdef0`)
    .describe(description);

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
/** An IPv4 CIDR block, written without leading zeros: 203.0.113.0/24, 0.0.0.0/0. */
export const CIDR_PATTERN = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}/(?:3[0-2]|[12]?\\d)$`);

/** Whether `value` is an IPv4 CIDR block (any host bits). */
export function isCidr(value: string): boolean {
  return CIDR_PATTERN.test(value);
}

/** The 32-bit address and prefix length of a CIDR block (call only on what isCidr accepts). */
export function parseCidr(value: string): { address: number; bits: number } {
  const [ip, bits] = value.split('/');
  const address = ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
  return { address, bits: Number(bits) };
}

/** The block written as its network address: 10.0.0.1/8 → 10.0.0.0/8. */
export function canonicalCidr(value: string): string {
  const { address, bits } = parseCidr(value);
  const size = 2 ** (32 - bits);
  const network = Math.floor(address / size) * size;
  const octets = [24, 16, 8, 0].map((shift) => Math.floor(network / 2 ** shift) % 256);
  return `${octets.join('.')}/${bits}`;
}

const cidr = z
  .string()
  .regex(CIDR_PATTERN, { message: 'an IPv4 CIDR block such as 203.0.113.0/24 or 0.0.0.0/0', abort: true })
  .refine((v) => canonicalCidr(v) === v, {
    error: (iss) => `the block's network address, ${canonicalCidr(String(iss.input))} (host bits are set)`,
  });

/** Positive durations as the plan writes them: 500ms, 5s, 10m, 2h, 7d. */
const POSITIVE_DURATION = /^[1-9]\d*(?:ms|s|m|h|d)$/;
const duration = (description: string) =>
  z
    .string()
    .regex(POSITIVE_DURATION, 'a duration such as 5s, 10m, 2h or 7d (a whole number > 0 and a unit ms, s, m, h or d)')
    .describe(description);

const command = z.string().regex(/\S/, 'a non-empty shell command');
const commands = (description: string) => z.array(command).describe(description).default([]);

const instanceType = z
  .string()
  .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'an EC2 instance type such as g4dn.xlarge')
  .describe('An EC2 instance type, e.g. g4dn.xlarge');

const httpPath = z.string().regex(/^\/\S*$/, 'an HTTP path starting with /, such as /health');

const serviceName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,62}$/, 'a service name of lowercase letters, digits and -, starting with a letter')
  .describe('The service name, as in the app (docker-compose service)');

const HOST_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';

// ---------------------------------------------------------------------------------------------
// Sections

export const serviceSchema = z
  .strictObject({
    name: serviceName,
    port: z
      .number()
      .int('a whole port number')
      .min(1, 'a port number from 1 to 65535')
      .max(65535, 'a port number from 1 to 65535')
      .describe('TCP port the service listens on, on the instance'),
    healthPath: httpPath.describe('HTTP path that answers 2xx when the service is healthy').default('/'),
    public: z
      .boolean()
      .describe('true: reachable from ingress.publicCidrs; false: reachable only on the instance (checked via SSM)')
      .default(false),
  })
  .describe('A service of the app');

const httpCheck = {
  service: serviceName.describe('Name of a public service in services'),
  path: httpPath.describe('HTTP path of the request'),
};

export const targetSchema = z
  .strictObject({
    instanceType: instanceType.describe('The GPU instance type to launch, e.g. g4dn.xlarge'),
    fallbackInstanceTypes: z
      .array(instanceType)
      .describe('Tried in order when instanceType has no capacity')
      .default([]),
    market: z
      .enum(['spot', 'on-demand'])
      .describe('spot (guarded against interruptions afterwards) or on-demand')
      .default('on-demand'),
    imageId: awsId('ami', 'an AMI id', 'AMI to launch; give this or imageParameter').optional(),
    imageParameter: z
      .string()
      .regex(/^\/[\w.\-/]+$/, 'an SSM parameter name starting with /, such as /aws/service/…/ami-id')
      .describe('SSM parameter holding the AMI id; give this or imageId')
      .optional(),
    subnetIds: z
      .array(awsId('subnet', 'a subnet id', 'A subnet id'))
      .min(1, 'at least one subnet id')
      .describe('Subnets (and so Availability Zones) to launch in, tried in order'),
    securityGroupIds: z
      .array(awsId('sg', 'a security group id', 'A security group id'))
      .min(1, 'at least one security group id')
      .describe('Security groups of the new instance'),
    iamInstanceProfile: z
      .string()
      .regex(
        /^(?:[\w+=,.@-]{1,128}|arn:aws[\w-]*:iam::\d{12}:instance-profile\/[\w+=,.@/-]{1,128})$/,
        'an instance profile name or ARN (the instance needs SSM permissions)',
      )
      .describe('Instance profile with SSM permissions (AmazonSSMManagedInstanceCore)')
      .optional(),
    kmsKeyArn: z
      .string()
      .regex(
        /^arn:aws[\w-]*:kms:[a-z0-9-]+:\d{12}:key\/[\w-]+$/,
        'a KMS key ARN like arn:aws:kms:<region>:<account>:key/<id>',
      )
      .describe(
        "Customer-managed KMS key for the EBS volumes (default: the account's EBS default key); the IAM policy then grants its use through EC2",
      )
      .optional(),
    keyName: z
      .string()
      .min(1, 'a key pair name')
      .max(255, 'a key pair name of at most 255 characters')
      .describe('EC2 key pair for SSH (optional; SSM needs none)')
      .optional(),
    rootVolume: z
      .strictObject({
        sizeGiB: z
          .number()
          .int('a whole number of GiB')
          .min(8, 'a size from 8 to 16384 GiB')
          .max(16384, 'a size from 8 to 16384 GiB')
          .describe('Root volume size in GiB')
          .default(30),
        type: z.enum(['gp3', 'gp2', 'io1', 'io2']).describe('Root volume type').default('gp3'),
      })
      .describe('Root EBS volume of the new instance')
      .default({ sizeGiB: 30, type: 'gp3' }),
  })
  .describe('The GPU instance to launch');

const remoteSchema = z
  .strictObject({
    setup: commands('Environment setup: docker, NVIDIA toolkit; nvidia-smi here fails the phase without a GPU'),
    deploy: commands('Source migration, e.g. git clone or s3 sync of the app'),
    build: commands('Image build, e.g. docker compose build'),
    start: commands('Service start, e.g. docker compose up -d'),
  })
  .describe('Shell steps run on the new instance through SSM Run Command; a non-zero exit fails the phase')
  .default({ setup: [], deploy: [], build: [], start: [] });

const ingressSchema = z
  .strictObject({
    publicCidrs: z.array(cidr).describe('Who may reach the public services').default(['0.0.0.0/0']),
    adminCidrs: z.array(cidr).describe('Who may reach SSH (port 22); default none: use SSM').default([]),
    allowSshFromAnywhere: z.boolean().describe('Must be true to list 0.0.0.0/0 in adminCidrs').default(false),
    revokeUnplanned: z
      .boolean()
      .describe('Revoke ingress rules of the security groups that this plan does not list')
      .default(false),
  })
  .describe('Security-group ingress the migration makes')
  .default({ publicCidrs: ['0.0.0.0/0'], adminCidrs: [], allowSshFromAnywhere: false, revokeUnplanned: false });

const checksSchema = z
  .strictObject({
    host: z
      .string()
      .regex(
        new RegExp(`^(?:auto|${HOST_LABEL}(?:\\.${HOST_LABEL})*)$`),
        'auto, or a host name or IP address without scheme or port',
      )
      .describe('Where outside checks connect: auto = the instance public address')
      .default('auto'),
    requestTimeoutSeconds: z
      .number()
      .positive('a number of seconds greater than 0')
      .max(300, 'at most 300 seconds')
      .describe('How long one health-check request may take')
      .default(10),
    interval: duration('Wait between attempts of a failing check (checks are retried as slow polls)').default('10s'),
    attempts: z
      .number()
      .int('a whole number of attempts')
      .min(1, 'from 1 to 1000 attempts')
      .max(1000, 'from 1 to 1000 attempts')
      .describe('How many times a failing check is tried before the phase fails')
      .default(30),
    voiceClone: z
      .strictObject({
        ...httpCheck,
        method: z.enum(['GET', 'POST', 'PUT']).describe('HTTP method').default('POST'),
        body: z.unknown().describe('JSON request body').default({}),
        maxSeconds: z
          .number()
          .positive('a number of seconds greater than 0')
          .max(600, 'at most 600 seconds')
          .describe('The synthesis must answer within this many seconds')
          .default(2),
      })
      .describe('The timed synthesis request (phase 6)')
      .optional(),
    latency: z
      .strictObject({
        ...httpCheck,
        samples: z
          .number()
          .int('a whole number of samples')
          .min(1, 'from 1 to 1000 samples')
          .max(1000, 'from 1 to 1000 samples')
          .describe('Number of requests to time')
          .default(5),
        maxAverageMs: z
          .number()
          .positive('a number of milliseconds greater than 0')
          .describe('Limit on the average')
          .default(50),
        maxP95Ms: z
          .number()
          .positive('a number of milliseconds greater than 0')
          .describe('Limit on the 95th percentile')
          .optional(),
      })
      .describe('Latency samples (phase 10)')
      .optional(),
  })
  .describe('How the services are checked')
  .default({ host: 'auto', requestTimeoutSeconds: 10, interval: '10s', attempts: 30 });

const approvalSchema = z
  .strictObject({
    timeout: duration('How long to wait for a decision; the old instance keeps running after it').default('7d'),
    approvers: z
      .array(z.string().regex(/\S/, 'a non-empty approver name'))
      .describe('Who may approve; empty = anyone')
      .default([]),
  })
  .describe('The approval before the old instance is stopped')
  .default({ timeout: '7d', approvers: [] });

const spotSchema = z
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
  })
  .describe('Spot guarding, when target.market is spot')
  .default({ pollInterval: '5s', interruptionQueueUrl: null, keepGoldenImages: 3 });

// ---------------------------------------------------------------------------------------------
// The plan

const planShape = z
  .strictObject({
    name: z
      .string()
      .min(1, { message: 'a plan name of lowercase letters, digits and - (1 to 63 characters)', abort: true })
      .max(63, { message: 'a plan name of at most 63 characters', abort: true })
      .regex(
        /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/,
        'a plan name of lowercase letters, digits and -, not starting or ending with -',
      )
      .describe('Plan name: gives the workflow ids migrate-<name> and spot-guardian-<name>'),
    region: z
      .string()
      .regex(/^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$/, 'an AWS region such as ap-northeast-1')
      .describe('AWS region of both instances'),
    source: z
      .strictObject({ instanceId: awsId('i', 'an instance id', 'The instance that serves the app now') })
      .describe('The instance to migrate from'),
    elasticIp: z
      .strictObject({
        allocationId: awsId('eipalloc', 'an Elastic IP allocation id', 'The Elastic IP the app is reached at'),
      })
      .describe('The Elastic IP that moves to the new instance'),
    target: targetSchema,
    remote: remoteSchema,
    services: z.array(serviceSchema).min(1, 'at least one service').describe('The services of the app'),
    ingress: ingressSchema,
    checks: checksSchema,
    approval: approvalSchema,
    spot: spotSchema,
    $schema: z.string().describe('The JSON Schema of this file, for editors; ignored by the migration').optional(),
  })
  .describe('A migration of an EC2 service onto a GPU instance');

// ---------------------------------------------------------------------------------------------
// Rules that span fields. They run even when other fields are wrong (so one pass reports
// everything), and so look at the data defensively.

type Issue = { path: (string | number)[]; message: string };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function crossFieldIssues(plan: Record<string, unknown>): Issue[] {
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

export const planSchema = planShape.superRefine(
  (plan, ctx) => {
    for (const issue of crossFieldIssues(plan as unknown as Record<string, unknown>)) {
      ctx.addIssue({ code: 'custom', ...issue });
    }
  },
  // Run whenever the input is an object, even if some fields failed.
  { when: (payload) => isRecord(payload.value) },
);

/** A validated plan, with defaults filled in. Plain data: safe to pass into workflows. */
export type Plan = z.output<typeof planSchema>;
export type ServiceSpec = z.output<typeof serviceSchema>;
/** A plan as written, before defaults. */
export type PlanInput = z.input<typeof planSchema>;
