/**
 * The plan file: one zod schema is the source of truth for validation, for the TypeScript type
 * the workflows receive, and for `schema/plan.schema.json` (editors). Key names are a contract.
 *
 * Every message below is phrased as what was expected, because the loader prints it as
 * "<field>: expected <message>". Pure: workflows import the types, and may import the schema.
 */
import { z } from 'zod';
import { crossFieldIssues, isRecord } from './cross-field';
import { spotSchema } from './spot';
import { awsId, cidr, commands, duration, HOST_LABEL, httpPath, instanceType, serviceName } from './fields';

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
    watchInterval: duration(
      'How often the new instance is looked at while a person decides: one that stopped running rolls the run back at once (the Elastic IP goes back to the old instance)',
    ).default('30s'),
    approvers: z
      .array(z.string().regex(/\S/, 'a non-empty approver name'))
      .describe('Who may approve; empty = anyone')
      .default([]),
  })
  .describe('The approval before the old instance is stopped')
  .default({ timeout: '7d', watchInterval: '30s', approvers: [] });

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
