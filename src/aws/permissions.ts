/**
 * Every AWS permission the worker needs, in one place, grouped by the phase that first needs it
 * (later phases reuse what earlier ones were granted). `migration iam-policy` prints the IAM
 * policy built from this list; a test runs a migration and a Spot recovery and checks that the
 * actions it made are exactly these.
 */
import type { Plan } from '../plan/schema';
import { TAG_PLAN } from '../shared/constants';

export interface PermissionGroup {
  /** Stable statement id. */
  sid: string;
  /** The phase (or workflow) that needs these first, and why. */
  why: string;
  actions: readonly string[];
}

export const WORKER_PERMISSIONS: readonly PermissionGroup[] = [
  {
    sid: 'Preflight',
    // Phase 0 reads what the plan names; DryRun of RunInstances, StopInstances and
    // AssociateAddress proves the permissions below without acting (DryRun needs the same action).
    why: 'preflight: read the source instance, Elastic IP, subnets, security groups, image, instance types, where they are offered and the vCPU quota',
    actions: [
      'ec2:DescribeInstances',
      'ec2:DescribeAddresses',
      'ec2:DescribeSubnets',
      'ec2:DescribeSecurityGroups',
      'ec2:DescribeImages',
      'ec2:DescribeInstanceTypes',
      'ec2:DescribeInstanceTypeOfferings',
      // The planned family's running vCPU quota (on-demand or Spot) against what already runs.
      'servicequotas:GetServiceQuota',
    ],
  },
  {
    sid: 'ImageParameter',
    // Only when the plan names the AMI through an SSM parameter (target.imageParameter), and by
    // the guardian when it has no golden image.
    why: 'preflight: resolve target.imageParameter to an AMI id',
    actions: ['ssm:GetParameter'],
  },
  {
    sid: 'Launch',
    // RunInstances with TagSpecifications also needs ec2:CreateTags (the tags are created with
    // the instance and its volume); an instance profile needs iam:PassRole for its role.
    // Spot uses RunInstances' market options; no spot-request API is called. The first Spot
    // launch of an account creates the service-linked role AWSServiceRoleForEC2Spot, which needs
    // iam:CreateServiceLinkedRole (else AuthFailure.ServiceLinkedRoleCreationNotPermitted).
    why: "launch: start the GPU instance (and the guardian's replacements), tag it, pass its instance profile role, let EC2 make its Spot service-linked role",
    actions: ['ec2:RunInstances', 'ec2:CreateTags', 'iam:PassRole', 'iam:CreateServiceLinkedRole'],
  },
  {
    sid: 'RemoteSteps',
    // setup, source, build, start and the private-service checks run through Run Command; a
    // step retried after a worker crash looks its command up (ListCommands) before sending again.
    why: "setup … start: wait for the SSM agent, run the remote steps and private-service checks through SSM Run Command, read their results, find a crashed attempt's command",
    actions: ['ssm:DescribeInstanceInformation', 'ssm:SendCommand', 'ssm:GetCommandInvocation', 'ssm:ListCommands'],
  },
  {
    sid: 'SecurityGroup',
    // Revoke is used by the rollback and by ingress.revokeUnplanned.
    why: 'security-group: add the planned ingress rules; rollback and revokeUnplanned revoke rules',
    actions: ['ec2:AuthorizeSecurityGroupIngress', 'ec2:RevokeSecurityGroupIngress'],
  },
  {
    sid: 'ElasticIp',
    why: 'eip-switch: move the Elastic IP (with AllowReassociation); the rollback and the guardian move it too',
    actions: ['ec2:AssociateAddress'],
  },
  {
    sid: 'Report',
    why: 'report: the current Spot price of the old and new instance types',
    actions: ['ec2:DescribeSpotPriceHistory'],
  },
  {
    sid: 'SpotPools',
    // A guardian ranks its Spot pools before each replacement: the zones' placement scores for
    // the planned types, then their Spot prices (DescribeSpotPriceHistory, granted above).
    why: "spot guardian: rank the replacement's Spot pools by placement score",
    actions: ['ec2:GetSpotPlacementScores'],
  },
  {
    sid: 'StopOld',
    // CreateImage tags the image on creation (ec2:CreateTags, granted above). StartInstances is
    // the undo of stop-old. The old instance is never terminated.
    why: 'stop-old: AMI backup of the old instance, then stop it; golden image of the new one; undo starts it again',
    actions: ['ec2:CreateImage', 'ec2:StopInstances', 'ec2:StartInstances'],
  },
  {
    sid: 'ImageCleanup',
    // Golden images beyond spot.keepGoldenImages, and `migration cleanup --apply`: only images
    // and snapshots tagged with the plan (CreateImage tags both).
    why: 'keep spot.keepGoldenImages golden images: deregister older ones and delete their snapshots',
    actions: ['ec2:DescribeSnapshots', 'ec2:DeregisterImage', 'ec2:DeleteSnapshot'],
  },
  {
    sid: 'Terminate',
    // Only instances this tool launched: the rollback of launch, and the guardian retiring an
    // interrupted instance. With --plan, limited to instances tagged with the plan.
    why: 'rollback and Spot guardian: terminate instances this tool launched',
    actions: ['ec2:TerminateInstances'],
  },
  {
    sid: 'SpotEvents',
    // The region's event router: the single reader of the EventBridge → SQS queue.
    // DeleteMessageBatch is authorised by sqs:DeleteMessage.
    why: 'spot events: read the interruption queue and delete what was routed',
    actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage'],
  },
];

/**
 * What `migration events setup|remove` calls: not the worker's. Whoever sets up a region's Spot
 * events once needs these (`migration iam-policy --setup`); the worker needs none of them.
 */
export const EVENTS_SETUP_PERMISSIONS: readonly PermissionGroup[] = [
  {
    sid: 'EventsAccount',
    // The default event bus's ARN names the account, for the rules' patterns and the queue policy.
    why: "events setup/remove: the account, from the default event bus's ARN",
    actions: ['events:DescribeEventBus'],
  },
  {
    sid: 'EventsQueues',
    // CreateQueue with tags also needs sqs:TagQueue. Deleting a queue deletes its policy.
    why: 'events setup/remove: find, make, bring up to date and delete the queue and its dead-letter queue',
    actions: [
      'sqs:GetQueueUrl',
      'sqs:ListQueueTags',
      'sqs:GetQueueAttributes',
      'sqs:CreateQueue',
      'sqs:TagQueue',
      'sqs:SetQueueAttributes',
      'sqs:DeleteQueue',
    ],
  },
  {
    sid: 'EventsRules',
    // PutRule with Tags also needs events:TagResource. A target on an SQS queue passes no role.
    why: 'events setup/remove: find, make, bring up to date and delete the three rules and their queue target',
    actions: [
      'events:DescribeRule',
      'events:ListTagsForResource',
      'events:ListTargetsByRule',
      'events:PutRule',
      'events:TagResource',
      'events:PutTargets',
      'events:RemoveTargets',
      'events:DeleteRule',
    ],
  },
];

/** Every action of `events setup` and `events remove`, sorted, each once. */
export function eventsSetupActions(): string[] {
  return [...new Set(EVENTS_SETUP_PERMISSIONS.flatMap((g) => g.actions))].sort();
}

/** What the setup policy is narrowed to: the rules' names always; with a plan, its region and queues. */
export interface EventsSetupScope {
  ruleNames: readonly string[];
  region?: string;
  /** The queue and its dead-letter queue. */
  queueNames?: readonly string[];
  /** When the plan's queue URL names it. */
  account?: string;
}

/**
 * The policy for `migration events setup|remove`: its actions on the default event bus, the three
 * rules (by name, in any region without a plan) and, with a plan, the plan's queue and its
 * dead-letter queue in the plan's region (without one, any queue).
 */
export function eventsSetupPolicy(scope: EventsSetupScope): PolicyDocument {
  const region = scope.region ?? '*';
  const account = scope.account ?? '*';
  const group = (sid: string) => EVENTS_SETUP_PERMISSIONS.find((g) => g.sid === sid)?.actions ?? [];
  const queues = scope.queueNames?.length
    ? scope.queueNames.map((q) => `arn:aws:sqs:${region}:${account}:${q}`)
    : `arn:aws:sqs:${region}:${account}:*`;
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'EventsAccount',
        Effect: 'Allow',
        Action: [...group('EventsAccount')],
        Resource: `arn:aws:events:${region}:${account}:event-bus/default`,
      },
      { Sid: 'EventsQueues', Effect: 'Allow', Action: [...group('EventsQueues')], Resource: queues },
      {
        Sid: 'EventsRules',
        Effect: 'Allow',
        Action: [...group('EventsRules')],
        Resource: scope.ruleNames.map((r) => `arn:aws:events:${region}:${account}:rule/${r}`),
      },
    ],
  };
}

/** The service-linked role EC2 makes on an account's first Spot launch. */
export const SPOT_ROLE_ARN = 'arn:aws:iam::*:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot';

/** Every action of the worker, sorted, each once. */
export function workerActions(): string[] {
  return [...new Set(WORKER_PERMISSIONS.flatMap((g) => g.actions))].sort();
}

/**
 * The IAM action that authorises an API call as logged (`ec2`, `RunInstances`): the same name,
 * except for batch calls, which IAM authorises with the single action.
 */
export function iamActionOf(service: string, action: string): string {
  const batch: Record<string, string> = {
    'sqs:DeleteMessageBatch': 'sqs:DeleteMessage',
    'sqs:SendMessageBatch': 'sqs:SendMessage',
    'sqs:ChangeMessageVisibilityBatch': 'sqs:ChangeMessageVisibility',
  };
  const name = `${service}:${action}`;
  return batch[name] ?? name;
}

export interface PolicyStatement {
  Sid: string;
  Effect: 'Allow';
  Action: string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: '2012-10-17';
  Statement: PolicyStatement[];
}

/** arn:aws:sqs:<region>:<account>:<name> of a queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>). */
export function queueArn(url: string, region: string): string {
  const m = /^https?:\/\/[^/]+\/(\d{12})\/([^/?#]+)/.exec(url);
  return m ? `arn:aws:sqs:${region}:${m[1]}:${m[2]}` : `arn:aws:sqs:${region}:*:*`;
}

/**
 * The worker's IAM policy. Without a plan: every action on every resource. With a plan: the
 * same actions, narrowed where AWS allows it: to the plan's region, the SSM parameter and
 * document it uses, its queue, instances tagged with the plan for termination, and tags only
 * when they are created with an instance or image (or on the plan's own instances).
 */
export function iamPolicy(plan?: Plan): PolicyDocument {
  const inRegion = plan ? { StringEquals: { 'aws:RequestedRegion': plan.region } } : undefined;
  const statements: PolicyStatement[] = [];
  const push = (
    sid: string,
    actions: readonly string[],
    resource: string | string[],
    condition?: PolicyStatement['Condition'],
  ) => {
    statements.push({
      Sid: sid,
      Effect: 'Allow',
      Action: [...actions],
      Resource: resource,
      ...(condition ? { Condition: condition } : {}),
    });
  };
  for (const g of WORKER_PERMISSIONS) {
    if (!plan) {
      const iam = new Set(['iam:PassRole', 'iam:CreateServiceLinkedRole']);
      push(
        g.sid,
        g.actions.filter((a) => !iam.has(a)),
        '*',
      );
      if (g.actions.includes('iam:PassRole'))
        push(`${g.sid}PassRole`, ['iam:PassRole'], '*', {
          StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' },
        });
      if (g.actions.includes('iam:CreateServiceLinkedRole'))
        push(`${g.sid}SpotRole`, ['iam:CreateServiceLinkedRole'], SPOT_ROLE_ARN, {
          StringEquals: { 'iam:AWSServiceName': 'spot.amazonaws.com' },
        });
      continue;
    }
    const region = plan.region;
    switch (g.sid) {
      case 'ImageParameter': {
        const name = plan.target.imageParameter;
        // Public parameters (/aws/service/…) have no account in their ARN.
        const arn = name
          ? `arn:aws:ssm:${region}:${name.startsWith('/aws/') ? '' : '*'}:parameter${name}`
          : `arn:aws:ssm:${region}:*:parameter/*`;
        push(g.sid, g.actions, arn);
        break;
      }
      case 'Launch':
        push(g.sid, ['ec2:RunInstances'], '*', inRegion);
        push(`${g.sid}TagOnCreate`, ['ec2:CreateTags'], '*', {
          StringEquals: { 'aws:RequestedRegion': region, 'ec2:CreateAction': ['RunInstances', 'CreateImage'] },
        });
        // The guardian marks the instance it guards; only instances of this plan.
        push(`${g.sid}TagOwnInstances`, ['ec2:CreateTags'], `arn:aws:ec2:${region}:*:instance/*`, {
          StringEquals: { [`aws:ResourceTag/${TAG_PLAN}`]: plan.name },
        });
        push(`${g.sid}PassRole`, ['iam:PassRole'], '*', {
          StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' },
        });
        push(`${g.sid}SpotRole`, ['iam:CreateServiceLinkedRole'], SPOT_ROLE_ARN, {
          StringEquals: { 'iam:AWSServiceName': 'spot.amazonaws.com' },
        });
        break;
      case 'RemoteSteps':
        push(
          g.sid,
          ['ssm:SendCommand'],
          [`arn:aws:ssm:${region}::document/AWS-RunShellScript`, `arn:aws:ec2:${region}:*:instance/*`],
        );
        push(
          `${g.sid}Results`,
          ['ssm:DescribeInstanceInformation', 'ssm:GetCommandInvocation', 'ssm:ListCommands'],
          '*',
          inRegion,
        );
        break;
      case 'ImageCleanup':
        push(g.sid, ['ec2:DescribeSnapshots'], '*', inRegion);
        push(
          `${g.sid}Delete`,
          ['ec2:DeregisterImage', 'ec2:DeleteSnapshot'],
          [`arn:aws:ec2:${region}::image/*`, `arn:aws:ec2:${region}::snapshot/*`],
          {
            StringEquals: { [`aws:ResourceTag/${TAG_PLAN}`]: plan.name },
          },
        );
        break;
      case 'Terminate':
        push(g.sid, g.actions, `arn:aws:ec2:${region}:*:instance/*`, {
          StringEquals: { [`aws:ResourceTag/${TAG_PLAN}`]: plan.name },
        });
        break;
      case 'SpotEvents':
        push(
          g.sid,
          g.actions,
          plan.spot.interruptionQueueUrl
            ? queueArn(plan.spot.interruptionQueueUrl, region)
            : `arn:aws:sqs:${region}:*:*`,
        );
        break;
      default:
        push(g.sid, g.actions, '*', inRegion);
    }
  }
  // A customer-managed key for the volumes: EC2 uses it on the worker's behalf (launch, and
  // starting the old instance again if its volumes use it). Without these, the instance goes
  // from pending to terminated with Client.InternalError.
  if (plan?.target.kmsKeyArn) {
    push('EbsKmsKey', KMS_FOR_EBS, plan.target.kmsKeyArn, {
      StringEquals: { 'kms:ViaService': `ec2.${plan.region}.amazonaws.com` },
    });
  }
  return { Version: '2012-10-17', Statement: statements };
}

/** What EC2 needs of a customer-managed KMS key to create and attach encrypted volumes for the caller. */
export const KMS_FOR_EBS = [
  'kms:CreateGrant',
  'kms:Decrypt',
  'kms:DescribeKey',
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:ReEncrypt*',
] as const;

/** Every action a policy allows. */
export function policyActions(policy: PolicyDocument): string[] {
  return [...new Set(policy.Statement.flatMap((s) => s.Action))].sort();
}
