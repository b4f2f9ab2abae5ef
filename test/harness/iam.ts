/**
 * IAM as the proxy enforces it: every call through the proxy's main door is authorised against
 * an identity policy, the way IAM evaluates one (the policy evaluation logic, for a single
 * identity-based policy and no boundaries): a request is allowed only if, for every resource it
 * touches, some Allow statement matches the action, the resource ARN and all its conditions. A
 * condition on a key the request does not carry does not match.
 *
 * What one API call asks IAM for is more than its own action: RunInstances with tags asks for
 * ec2:CreateTags (with ec2:CreateAction), with an instance profile for iam:PassRole (with
 * iam:PassedToService), and the first Spot launch of an account for
 * iam:CreateServiceLinkedRole (with iam:AWSServiceName). `authorizations` lists them.
 */
import type { PolicyDocument, PolicyStatement } from '../../src/aws/permissions';
import { iamActionOf } from '../../src/aws/permissions';

/** Every action on every resource: for tests of the world's other rules, which make calls no worker makes. */
export const ALLOW_ALL: PolicyDocument = {
  Version: '2012-10-17',
  Statement: [{ Sid: 'All', Effect: 'Allow', Action: ['*'], Resource: '*' }],
};

/** `policy` with one action taken out of every statement (statements left with none go). */
export function withoutAction(policy: PolicyDocument, action: string): PolicyDocument {
  return {
    ...policy,
    Statement: policy.Statement.map((st) => ({ ...st, Action: st.Action.filter((a) => a !== action) })).filter(
      (st) => st.Action.length > 0,
    ),
  };
}

/** One question to IAM: may this action be done on this resource, with these request facts. */
export interface Authorization {
  action: string;
  resource: string;
  /** Condition keys of the request (aws:RequestedRegion, ec2:CreateAction, aws:ResourceTag/K, …). */
  context: Record<string, string>;
}

/** IAM's answer for one request: allowed, or the first authorization no statement allows. */
export function firstDenied(
  policies: readonly PolicyDocument[],
  asks: readonly Authorization[],
): Authorization | undefined {
  const statements = policies.flatMap((p) => p.Statement);
  return asks.find((ask) => !statements.some((st) => allows(st, ask)));
}

function allows(st: PolicyStatement, ask: Authorization): boolean {
  if (st.Effect !== 'Allow') return false;
  if (!st.Action.some((a) => glob(a.toLowerCase(), ask.action.toLowerCase()))) return false;
  const resources = Array.isArray(st.Resource) ? st.Resource : [st.Resource];
  if (!resources.some((r) => glob(r, ask.resource))) return false;
  for (const [operator, keys] of Object.entries(st.Condition ?? {})) {
    if (operator !== 'StringEquals') throw new Error(`IAM evaluator: condition operator ${operator} is not supported`);
    for (const [key, wanted] of Object.entries(keys)) {
      const have = ask.context[key];
      if (have === undefined) return false;
      if (!(Array.isArray(wanted) ? wanted : [wanted]).includes(have)) return false;
    }
  }
  return true;
}

/** IAM's wildcards: `*` any run of characters, `?` one character. */
function glob(pattern: string, value: string): boolean {
  let re = GLOBS.get(pattern);
  if (!re) {
    re = new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    );
    GLOBS.set(pattern, re);
  }
  return re.test(value);
}
const GLOBS = new Map<string, RegExp>();

/**
 * What EC2 asks KMS for on the caller's behalf when a launch names a customer-managed key for
 * its volumes (`BlockDeviceMapping.N.Ebs.KmsKeyId`): DryRun does not ask, and a refusal shows
 * only as the instance terminating in `pending` with Client.InternalError.
 */
export function kmsAuthorizations(request: AuthRequest): Authorization[] {
  const region = request.region ?? 'us-east-1';
  const keys = new Set(
    Object.entries(request.params)
      .filter(([k]) => /^BlockDeviceMapping\.\d+\.Ebs\.KmsKeyId$/.test(k))
      .map(([, v]) => String(v)),
  );
  return [...keys].flatMap((key) =>
    ['kms:CreateGrant', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:Decrypt', 'kms:DescribeKey'].map((action) => ({
      action,
      resource: key,
      context: { 'kms:ViaService': `ec2.${region}.amazonaws.com` },
    })),
  );
}

/** What the proxy knows of the resources a request names. */
export interface ResourceFacts {
  accountId: string;
  /** Tags of an EC2 resource by id (instance, image, snapshot); {} when it has none or is unknown. */
  tagsOf(id: string): Promise<Record<string, string>>;
  /** Whether the account already has EC2's Spot service-linked role. */
  spotRoleExists: boolean;
}

export interface AuthRequest {
  service: string;
  action: string;
  region?: string;
  params: Record<string, unknown>;
}

/** Every authorization a request needs, as IAM would ask for it. */
export async function authorizations(request: AuthRequest, facts: ResourceFacts): Promise<Authorization[]> {
  const region = request.region ?? 'us-east-1';
  const account = facts.accountId;
  const base = { 'aws:RequestedRegion': region };
  const p = request.params;
  const action = iamActionOf(request.service, request.action);
  const listed = (prefix: RegExp) =>
    Object.entries(p)
      .filter(([k]) => prefix.test(k))
      .map(([, v]) => String(v));
  const tagged = async (arn: string, id: string): Promise<Authorization> => {
    const tags = await facts.tagsOf(id);
    return {
      action,
      resource: arn,
      context: { ...base, ...Object.fromEntries(Object.entries(tags).map(([k, v]) => [`aws:ResourceTag/${k}`, v])) },
    };
  };
  const ec2Arn = (id: string) => {
    if (id.startsWith('i-')) return `arn:aws:ec2:${region}:${account}:instance/${id}`;
    if (id.startsWith('ami-')) return `arn:aws:ec2:${region}::image/${id}`;
    if (id.startsWith('snap-')) return `arn:aws:ec2:${region}::snapshot/${id}`;
    if (id.startsWith('sg-')) return `arn:aws:ec2:${region}:${account}:security-group/${id}`;
    return `arn:aws:ec2:${region}:${account}:*/${id}`;
  };

  if (request.service === 'ec2') {
    switch (request.action) {
      case 'RunInstances': {
        const asks: Authorization[] = [
          { action, resource: `arn:aws:ec2:${region}:${account}:instance/*`, context: base },
        ];
        const types = new Set(listed(/^TagSpecification\.\d+\.ResourceType$/));
        for (const type of types)
          asks.push({
            action: 'ec2:CreateTags',
            resource: `arn:aws:ec2:${region}:${account}:${type}/*`,
            context: { ...base, 'ec2:CreateAction': 'RunInstances' },
          });
        const profile = p['IamInstanceProfile.Name'] ?? p['IamInstanceProfile.Arn'];
        if (profile !== undefined) {
          const name = String(profile).split('/').pop();
          asks.push({
            action: 'iam:PassRole',
            resource: `arn:aws:iam::${account}:role/${name}`,
            context: { 'iam:PassedToService': 'ec2.amazonaws.com' },
          });
        }
        if (String(p['InstanceMarketOptions.MarketType']) === 'spot' && !facts.spotRoleExists) {
          asks.push({
            action: 'iam:CreateServiceLinkedRole',
            resource: `arn:aws:iam::${account}:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot`,
            context: { 'iam:AWSServiceName': 'spot.amazonaws.com' },
          });
        }
        return asks;
      }
      case 'CreateImage': {
        const asks: Authorization[] = [{ action, resource: `arn:aws:ec2:${region}::image/*`, context: base }];
        for (const type of new Set(listed(/^TagSpecification\.\d+\.ResourceType$/))) {
          asks.push({
            action: 'ec2:CreateTags',
            resource: `arn:aws:ec2:${region}:${type === 'image' || type === 'snapshot' ? '' : account}:${type}/*`,
            context: { ...base, 'ec2:CreateAction': 'CreateImage' },
          });
        }
        return asks;
      }
      case 'CreateTags':
        return Promise.all(listed(/^ResourceId\.\d+$/).map((id) => tagged(ec2Arn(id), id)));
      case 'TerminateInstances':
      case 'StopInstances':
      case 'StartInstances':
        return Promise.all(listed(/^InstanceId\.\d+$/).map((id) => tagged(ec2Arn(id), id)));
      case 'DeregisterImage':
        return [await tagged(ec2Arn(String(p.ImageId)), String(p.ImageId))];
      case 'DeleteSnapshot':
        return [await tagged(ec2Arn(String(p.SnapshotId)), String(p.SnapshotId))];
      default:
        return [{ action, resource: '*', context: base }];
    }
  }
  if (request.service === 'ssm') {
    if (request.action === 'SendCommand') {
      const document = String(p.DocumentName ?? '');
      const owned = document.startsWith('AWS-') ? '' : account;
      return [
        { action, resource: `arn:aws:ssm:${region}:${owned}:document/${document}`, context: base },
        ...(Array.isArray(p.InstanceIds) ? p.InstanceIds : []).map((id) => ({
          action,
          resource: `arn:aws:ec2:${region}:${account}:instance/${String(id)}`,
          context: base,
        })),
      ];
    }
    if (request.action === 'GetParameter' || request.action === 'GetParameters') {
      const names =
        request.action === 'GetParameter'
          ? [String(p.Name ?? '')]
          : (Array.isArray(p.Names) ? p.Names : []).map(String);
      return names.map((name) => ({
        action,
        resource: `arn:aws:ssm:${region}:${name.startsWith('/aws/') ? '' : account}:parameter${name.startsWith('/') ? name : `/${name}`}`,
        context: base,
      }));
    }
    return [{ action, resource: '*', context: base }];
  }
  if (request.service === 'sqs') {
    const url = String(p.QueueUrl ?? '');
    const name = /\/(\d{12})\/([^/?#]+)/.exec(url);
    const resource = name ? `arn:aws:sqs:${region}:${name[1]}:${name[2]}` : '*';
    return [{ action, resource, context: base }];
  }
  return [{ action, resource: '*', context: base }];
}
