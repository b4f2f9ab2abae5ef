import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { durationMs } from '../../src/plan/duration';
import { loadPlanFile, parsePlanText, PlanError, validatePlan, type PlanProblem } from '../../src/plan/load';
import { canonicalCidr, isCidr } from '../../src/plan/schema';

const EXAMPLE_FILE = join(__dirname, '..', '..', 'examples', 'video-message-app.yaml');
const EXAMPLE_TEXT = readFileSync(EXAMPLE_FILE, 'utf8');
/** 1-based line of the example that starts with `prefix`. */
const lineOf = (prefix: string): number => EXAMPLE_TEXT.split('\n').findIndex((l) => l.startsWith(prefix)) + 1;

type PlanData = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A fresh copy of the example plan as data. */
const example = (): PlanData => parse(EXAMPLE_TEXT) as PlanData;

/** The smallest plan that is valid: everything else has a default. */
const minimal = (): PlanData => ({
  name: 'app',
  region: 'us-east-1',
  source: { instanceId: 'i-0123456789abcdef0' },
  elasticIp: { allocationId: 'eipalloc-0123456789abcdef0' },
  target: {
    instanceType: 'g4dn.xlarge',
    imageId: 'ami-0123456789abcdef0',
    subnetIds: ['subnet-0123456789abcdef0'],
    securityGroupIds: ['sg-0123456789abcdef0'],
  },
  services: [{ name: 'web', port: 8080 }],
});

function problemsOf(text: string): PlanProblem[] {
  try {
    parsePlanText(text, 'case.yaml');
  } catch (err) {
    if (err instanceof PlanError) return err.problems;
    throw err;
  }
  throw new Error('the plan was accepted');
}

interface Case {
  name: string;
  /** Raw plan text, or a change to the example plan (written back as YAML). */
  text?: string;
  edit?: (plan: PlanData) => void;
  /** The field the problem is reported at. */
  field: string;
  /** What the expected-text must say. */
  expected: RegExp;
  /** Other fields that are rightly reported too (by default the field above is the only one). */
  also?: string[];
}

const set = (path: string, value: unknown) => (plan: PlanData) => {
  const keys = path.split('.');
  let node = plan;
  for (const key of keys.slice(0, -1)) node = node[key];
  if (value === undefined) delete node[keys[keys.length - 1]];
  else node[keys[keys.length - 1]] = value;
};

const cases: Case[] = [
  // --- syntax ------------------------------------------------------------------------------
  { name: 'YAML: unclosed flow sequence', text: 'name: app\nregion: [us-east-1\n', field: '(plan)', expected: /valid YAML or JSON.*line \d+, column \d+/ },
  { name: 'YAML: tab indentation', text: 'name: app\nsource:\n\tinstanceId: i-0123456789abcdef0\n', field: '(plan)', expected: /valid YAML or JSON.*[Tt]ab/ },
  { name: 'YAML: mapping items at different columns', text: 'source:\n    instanceId: i-0123456789abcdef0\n  extra: 1\n', field: '(plan)', expected: /valid YAML or JSON/ },
  { name: 'YAML: two documents in one file', text: 'name: a\n---\nname: b\n', field: '(plan)', expected: /valid YAML or JSON.*multiple documents/ },
  { name: 'YAML: alias without anchor', text: `${EXAMPLE_TEXT}\nextra: *nowhere\n`, field: '(plan)', expected: /valid YAML or JSON.*alias/i },
  { name: 'YAML: custom tag', text: EXAMPLE_TEXT.replace('region: ap-northeast-1', 'region: !Ref Region'), field: '(plan)', expected: /valid YAML or JSON.*tag/i },
  { name: 'JSON: missing closing brace', text: '{"name": "app", "region": "us-east-1"', field: '(plan)', expected: /valid YAML or JSON.*line 1/ },
  { name: 'JSON: missing comma between members', text: '{"name": "app"\n "region": "us-east-1"}', field: '(plan)', expected: /valid YAML or JSON/ },
  { name: 'empty document', text: '# nothing but a comment\n', field: '(plan)', expected: /mapping of plan keys.*empty document/ },
  { name: 'a list at the top', text: '- name: app\n', field: '(plan)', expected: /mapping of plan keys.*got list/ },
  { name: 'a scalar at the top', text: 'just some words\n', field: '(plan)', expected: /mapping of plan keys.*got string/ },

  // --- duplicate keys ----------------------------------------------------------------------
  { name: 'duplicate top-level key', text: EXAMPLE_TEXT.replace('region: ap-northeast-1', 'region: ap-northeast-1\nregion: us-east-1'), field: 'region', expected: new RegExp(`each key once.*'region' is also on line ${lineOf('region:')}\\)`) },
  { name: 'duplicate nested key', text: EXAMPLE_TEXT.replace('  market: spot', '  market: spot\n  market: on-demand'), field: 'target.market', expected: /each key once/ },
  { name: 'duplicate key in a list item', text: EXAMPLE_TEXT.replace('{ name: frontend,  port: 55434,', '{ name: frontend,  port: 55434, port: 1,'), field: 'services[1].port', expected: /each key once/ },
  { name: 'duplicate key in JSON', text: JSON.stringify(minimal()).replace('"name":"app",', '"name":"app","name":"other",'), field: 'name', expected: /each key once/ },

  // --- wrong types -------------------------------------------------------------------------
  { name: 'region is a number', edit: set('region', 5), field: 'region', expected: /^string, got number$/ },
  { name: 'name is a boolean', edit: set('name', true), field: 'name', expected: /^string, got boolean$/ },
  { name: 'port is a string', edit: (p) => (p.services[0].port = '55433'), field: 'services[0].port', expected: /^number, got string$/ },
  { name: 'public is "yes"', edit: (p) => (p.services[0].public = 'yes'), field: 'services[0].public', expected: /boolean.*got string/ },
  { name: 'subnetIds is a string', edit: set('target.subnetIds', 'subnet-0123456789abcdef0'), field: 'target.subnetIds', expected: /^list, got string$/ },
  { name: 'target is a list', edit: set('target', []), field: 'target', expected: /^mapping, got list$/ },
  { name: 'sizeGiB is not whole', edit: set('target.rootVolume.sizeGiB', 30.5), field: 'target.rootVolume.sizeGiB', expected: /whole number.*got 30\.5/ },
  { name: 'approvers is a string', edit: set('approval.approvers', 'alice'), field: 'approval.approvers', expected: /^list, got string$/ },
  { name: 'pollInterval is a number', edit: set('spot.pollInterval', 5), field: 'spot.pollInterval', expected: /^string, got number$/ },
  { name: 'maxSeconds is a string', edit: set('checks.voiceClone.maxSeconds', '2'), field: 'checks.voiceClone.maxSeconds', expected: /^number, got string$/ },
  { name: 'allowSshFromAnywhere is a string', edit: set('ingress.allowSshFromAnywhere', 'true'), field: 'ingress.allowSshFromAnywhere', expected: /boolean.*got string/ },
  { name: 'a command is a number', edit: set('remote.deploy', [123]), field: 'remote.deploy[0]', expected: /^string, got number$/ },
  { name: 'remote.build is a string', edit: set('remote.build', 'docker compose build'), field: 'remote.build', expected: /^list, got string$/ },
  { name: 'a service is null', edit: (p) => (p.services[3] = null), field: 'services[3]', expected: /^mapping, got null$/ },

  // --- missing required keys ---------------------------------------------------------------
  { name: 'missing name', edit: set('name', undefined), field: 'name', expected: /string \(required key is missing\).*workflow ids/ },
  { name: 'missing source.instanceId', edit: set('source', {}), field: 'source.instanceId', expected: /required key is missing.*serves the app now/ },
  { name: 'missing elasticIp', edit: set('elasticIp', undefined), field: 'elasticIp', expected: /mapping \(required key is missing\)/ },
  { name: 'missing target.instanceType', edit: set('target.instanceType', undefined), field: 'target.instanceType', expected: /string \(required key is missing\)/ },
  { name: 'missing services', edit: set('services', undefined), field: 'services', expected: /list \(required key is missing\)/ },
  { name: 'a service without a port', edit: (p) => delete p.services[1].port, field: 'services[1].port', expected: /number \(required key is missing\)/ },
  { name: 'voiceClone without a path', edit: set('checks.voiceClone.path', undefined), field: 'checks.voiceClone.path', expected: /required key is missing/ },

  // --- unknown keys, at every level ----------------------------------------------------------
  { name: 'unknown top-level key', edit: set('extra', 1), field: 'extra', expected: /known key, one of: name, region, .*spot \(unknown keys are errors\)/ },
  { name: 'misspelt top-level key', edit: (p) => ((p.regoin = p.region), delete p.region), field: 'regoin', expected: /did you mean 'region'/, also: ['region'] },
  { name: 'unknown key in source', edit: set('source.instanceID', 'i-0123456789abcdef0'), field: 'source.instanceID', expected: /did you mean 'instanceId'/ },
  { name: 'unknown key in elasticIp', edit: set('elasticIp.publicIp', '203.0.113.10'), field: 'elasticIp.publicIp', expected: /known key, one of: allocationId/ },
  { name: 'unknown key in target', edit: set('target.spotPrice', '0.2'), field: 'target.spotPrice', expected: /unknown keys are errors/ },
  { name: 'unknown key in rootVolume', edit: set('target.rootVolume.iops', 3000), field: 'target.rootVolume.iops', expected: /one of: sizeGiB, type/ },
  { name: 'unknown key in remote', edit: set('remote.teardown', []), field: 'remote.teardown', expected: /one of: setup, deploy, build, start/ },
  { name: 'misspelt key in a service', edit: (p) => (p.services[2].healthpath = '/ready'), field: 'services[2].healthpath', expected: /did you mean 'healthPath'/ },
  { name: 'unknown key in ingress', edit: set('ingress.sshCidrs', []), field: 'ingress.sshCidrs', expected: /unknown keys are errors/ },
  { name: 'unknown key in checks', edit: set('checks.hostname', 'x'), field: 'checks.hostname', expected: /unknown keys are errors/ },
  { name: 'unknown key in voiceClone', edit: set('checks.voiceClone.timeout', 3), field: 'checks.voiceClone.timeout', expected: /unknown keys are errors/ },
  { name: 'unknown key in latency', edit: set('checks.latency.p95', 80), field: 'checks.latency.p95', expected: /unknown keys are errors/ },
  { name: 'misspelt key in approval', edit: set('approval.approver', ['alice']), field: 'approval.approver', expected: /did you mean 'approvers'/ },
  { name: 'unknown key in spot', edit: set('spot.queueUrl', 'https://sqs.ap-northeast-1.amazonaws.com/1/q'), field: 'spot.queueUrl', expected: /unknown keys are errors/ },

  // --- malformed ids -------------------------------------------------------------------------
  { name: 'instance id with capitals', edit: set('source.instanceId', 'i-0123456789ABCDEF0'), field: 'source.instanceId', expected: /instance id like i-0123456789abcdef0, got "i-0123456789ABCDEF0"/ },
  { name: 'instance id without prefix', edit: set('source.instanceId', '0123456789abcdef0'), field: 'source.instanceId', expected: /instance id like i-/ },
  { name: 'allocation id too short', edit: set('elasticIp.allocationId', 'eipalloc-12'), field: 'elasticIp.allocationId', expected: /Elastic IP allocation id like eipalloc-/ },
  { name: 'allocation id is the public IP', edit: set('elasticIp.allocationId', '203.0.113.10'), field: 'elasticIp.allocationId', expected: /allocation id.*got "203\.0\.113\.10"/ },
  { name: 'malformed subnet id', edit: set('target.subnetIds', ['subnet-xyz']), field: 'target.subnetIds[0]', expected: /subnet id like subnet-/ },
  { name: 'security group given by name', edit: set('target.securityGroupIds', ['sg-0123456789abcdef0', 'default']), field: 'target.securityGroupIds[1]', expected: /security group id like sg-/ },
  { name: 'malformed AMI id', edit: (p) => ((p.target.imageId = 'ami-12'), delete p.target.imageParameter), field: 'target.imageId', expected: /AMI id like ami-/ },
  { name: 'no subnets', edit: set('target.subnetIds', []), field: 'target.subnetIds', expected: /at least one subnet id, got 0 item/ },
  { name: 'no security groups', edit: set('target.securityGroupIds', []), field: 'target.securityGroupIds', expected: /at least one security group id/ },
  { name: 'instance profile with spaces', edit: set('target.iamInstanceProfile', 'my profile'), field: 'target.iamInstanceProfile', expected: /instance profile name or ARN/ },

  // --- CIDRs ---------------------------------------------------------------------------------
  { name: 'mask over 32', edit: set('ingress.publicCidrs', ['10.0.0.0/33']), field: 'ingress.publicCidrs[0]', expected: /IPv4 CIDR block.*got "10\.0\.0\.0\/33"/ },
  { name: 'octet over 255', edit: set('ingress.publicCidrs', ['300.1.1.1/8']), field: 'ingress.publicCidrs[0]', expected: /IPv4 CIDR block/ },
  { name: 'missing mask', edit: set('ingress.adminCidrs', ['203.0.113.5']), field: 'ingress.adminCidrs[0]', expected: /IPv4 CIDR block.*got "203\.0\.113\.5"/ },
  { name: 'host bits set', edit: set('ingress.adminCidrs', ['10.0.0.1/8']), field: 'ingress.adminCidrs[0]', expected: /network address, 10\.0\.0\.0\/8/ },
  { name: 'leading zero in an octet', edit: set('ingress.publicCidrs', ['010.0.0.0/8']), field: 'ingress.publicCidrs[0]', expected: /IPv4 CIDR block/ },
  { name: 'IPv6 block', edit: set('ingress.publicCidrs', ['::/0']), field: 'ingress.publicCidrs[0]', expected: /IPv4 CIDR block/ },
  { name: 'the same CIDR twice', edit: set('ingress.publicCidrs', ['0.0.0.0/0', '0.0.0.0/0']), field: 'ingress.publicCidrs[1]', expected: /each CIDR once.*publicCidrs\[0\]/ },
  { name: 'CIDR is a number', edit: set('ingress.publicCidrs', [10]), field: 'ingress.publicCidrs[0]', expected: /^string, got number$/ },

  // --- ports ---------------------------------------------------------------------------------
  { name: 'port 0', edit: (p) => (p.services[0].port = 0), field: 'services[0].port', expected: /port number from 1 to 65535, got 0/ },
  { name: 'port 70000', edit: (p) => (p.services[0].port = 70000), field: 'services[0].port', expected: /port number from 1 to 65535, got 70000/ },
  { name: 'negative port', edit: (p) => (p.services[2].port = -1), field: 'services[2].port', expected: /port number from 1 to 65535/ },
  { name: 'fractional port', edit: (p) => (p.services[0].port = 8080.5), field: 'services[0].port', expected: /whole port number, got 8080\.5/ },
  { name: 'public service on port 22', edit: (p) => (p.services[1].port = 22), field: 'services[1].port', expected: /other than 22.*adminCidrs/ },

  // --- services ------------------------------------------------------------------------------
  { name: 'duplicate service names', edit: (p) => (p.services[1].name = 'backend'), field: 'services[1].name', expected: /unique service name.*'backend'.*services\[0\]/ },
  { name: 'duplicate service ports', edit: (p) => (p.services[3].port = 8001), field: 'services[3].port', expected: /unique port.*8001.*services\[2\]/ },
  { name: 'no services', edit: set('services', []), field: 'services', expected: /at least one service, got 0 item/ },
  { name: 'service name with capitals', edit: (p) => (p.services[0].name = 'Backend'), field: 'services[0].name', expected: /service name of lowercase letters/, also: ['checks.voiceClone.service', 'checks.latency.service'] },
  { name: 'health path without /', edit: (p) => (p.services[0].healthPath = 'health'), field: 'services[0].healthPath', expected: /HTTP path starting with \//, },

  // --- checks --------------------------------------------------------------------------------
  { name: 'check names an unknown service', edit: set('checks.voiceClone.service', 'tts'), field: 'checks.voiceClone.service', expected: /name of a service in services \(backend, frontend, openvoice, voicevox\); got 'tts'/ },
  { name: 'check names a private service', edit: set('checks.latency.service', 'openvoice'), field: 'checks.latency.service', expected: /public service.*'openvoice' is private/ },
  { name: 'check host with a scheme', edit: set('checks.host', 'http://example.com'), field: 'checks.host', expected: /auto, or a host name or IP address/ },
  { name: 'unsupported HTTP method', edit: set('checks.voiceClone.method', 'DELETE'), field: 'checks.voiceClone.method', expected: /one of "GET", "POST", "PUT", got "DELETE"/ },
  { name: 'zero seconds for synthesis', edit: set('checks.voiceClone.maxSeconds', 0), field: 'checks.voiceClone.maxSeconds', expected: /greater than 0, got 0/ },
  { name: 'no latency samples', edit: set('checks.latency.samples', 0), field: 'checks.latency.samples', expected: /from 1 to 1000 samples/ },
  { name: 'negative latency limit', edit: set('checks.latency.maxAverageMs', -5), field: 'checks.latency.maxAverageMs', expected: /milliseconds greater than 0/ },
  { name: 'check interval without a unit', edit: set('checks.interval', '10'), field: 'checks.interval', expected: /duration such as/ },
  { name: 'zero check attempts', edit: set('checks.attempts', 0), field: 'checks.attempts', expected: /from 1 to 1000 attempts, got 0/ },
  { name: 'request timeout of zero', edit: set('checks.requestTimeoutSeconds', 0), field: 'checks.requestTimeoutSeconds', expected: /seconds greater than 0/ },

  // --- durations -----------------------------------------------------------------------------
  { name: 'duration in words', edit: set('approval.timeout', '7 days'), field: 'approval.timeout', expected: /duration such as 5s, 10m, 2h or 7d.*got "7 days"/ },
  { name: 'zero duration', edit: set('approval.timeout', '0s'), field: 'approval.timeout', expected: /duration such as/ },
  { name: 'negative duration', edit: set('approval.timeout', '-1d'), field: 'approval.timeout', expected: /duration such as/ },
  { name: 'duration without a unit', edit: set('spot.pollInterval', '10'), field: 'spot.pollInterval', expected: /duration such as/ },
  { name: 'unknown duration unit', edit: set('spot.pollInterval', '5w'), field: 'spot.pollInterval', expected: /unit ms, s, m, h or d/ },
  { name: 'poll interval too long', edit: set('spot.pollInterval', '5m'), field: 'spot.pollInterval', expected: /from 1s to 2m.*got 5m/ },
  { name: 'poll interval too short', edit: set('spot.pollInterval', '500ms'), field: 'spot.pollInterval', expected: /from 1s to 2m/ },

  // --- market, image, instance types ----------------------------------------------------------
  { name: 'market with a capital', edit: set('target.market', 'Spot'), field: 'target.market', expected: /one of "spot", "on-demand", got "Spot"/ },
  { name: 'unknown market', edit: set('target.market', 'reserved'), field: 'target.market', expected: /one of "spot", "on-demand"/ },
  { name: 'both imageId and imageParameter', edit: set('target.imageId', 'ami-0123456789abcdef0'), field: 'target.imageParameter', expected: /only one of imageId and imageParameter/ },
  { name: 'neither imageId nor imageParameter', edit: set('target.imageParameter', undefined), field: 'target.imageId', expected: /AMI id in imageId, or an SSM parameter name in imageParameter \(neither is set\)/ },
  { name: 'image parameter without leading /', edit: set('target.imageParameter', 'aws/service/x'), field: 'target.imageParameter', expected: /SSM parameter name starting with \// },
  { name: 'instance type in capitals', edit: set('target.instanceType', 'G4DN.XLARGE'), field: 'target.instanceType', expected: /EC2 instance type such as g4dn\.xlarge/ },
  { name: 'instance type without size', edit: set('target.instanceType', 'g4dn'), field: 'target.instanceType', expected: /EC2 instance type/ },
  { name: 'fallback type equal to the main type', edit: set('target.fallbackInstanceTypes', ['g4dn.xlarge']), field: 'target.fallbackInstanceTypes[0]', expected: /other than target\.instanceType \(g4dn\.xlarge\)/ },
  { name: 'fallback type listed twice', edit: set('target.fallbackInstanceTypes', ['g5.xlarge', 'g4dn.2xlarge', 'g5.xlarge']), field: 'target.fallbackInstanceTypes[2]', expected: /each instance type once.*fallbackInstanceTypes\[0\]/ },
  { name: 'root volume too small', edit: set('target.rootVolume.sizeGiB', 4), field: 'target.rootVolume.sizeGiB', expected: /from 8 to 16384 GiB, got 4/ },
  { name: 'unknown volume type', edit: set('target.rootVolume.type', 'st1'), field: 'target.rootVolume.type', expected: /one of "gp3", "gp2", "io1", "io2"/ },

  // --- ingress, commands ----------------------------------------------------------------------
  { name: 'SSH open to the world by accident', edit: set('ingress.adminCidrs', ['203.0.113.0/24', '0.0.0.0/0']), field: 'ingress.adminCidrs[1]', expected: /narrower than 0\.0\.0\.0\/0.*allowSshFromAnywhere: true/ },
  { name: 'empty command', edit: set('remote.setup', ['nvidia-smi', '']), field: 'remote.setup[1]', expected: /non-empty shell command/ },
  { name: 'blank command', edit: set('remote.start', ['   ']), field: 'remote.start[0]', expected: /non-empty shell command/ },
  { name: 'empty approver name', edit: set('approval.approvers', ['alice', '']), field: 'approval.approvers[1]', expected: /non-empty approver name/ },

  // --- region, name ---------------------------------------------------------------------------
  { name: 'region as a city', edit: set('region', 'tokyo'), field: 'region', expected: /AWS region such as ap-northeast-1, got "tokyo"/ },
  { name: 'region in capitals', edit: set('region', 'AP-NORTHEAST-1'), field: 'region', expected: /AWS region/ },
  { name: 'region without its number', edit: set('region', 'ap-northeast'), field: 'region', expected: /AWS region/ },
  { name: 'availability zone as region', edit: set('region', 'ap-northeast-1a'), field: 'region', expected: /AWS region/ },
  { name: 'name in capitals', edit: set('name', 'Video-App'), field: 'name', expected: /lowercase letters, digits and -/ },
  { name: 'name too long', edit: set('name', 'a'.repeat(64)), field: 'name', expected: /at most 63 characters, got 64 character/ },
  { name: 'name starting with -', edit: set('name', '-video'), field: 'name', expected: /not starting or ending with -/ },
  { name: 'empty name', edit: set('name', ''), field: 'name', expected: /plan name/ },
  { name: 'name with underscore', edit: set('name', 'video_app'), field: 'name', expected: /lowercase letters, digits and -/ },

  // --- spot queue -----------------------------------------------------------------------------
  { name: 'queue URL that is not a URL', edit: set('spot.interruptionQueueUrl', 'spot-events'), field: 'spot.interruptionQueueUrl', expected: /SQS queue URL such as https:\/\// },
  { name: 'queue URL with another scheme', edit: set('spot.interruptionQueueUrl', 'ftp://sqs.ap-northeast-1.amazonaws.com/1/q'), field: 'spot.interruptionQueueUrl', expected: /SQS queue URL/ },
  { name: 'queue in another region', edit: set('spot.interruptionQueueUrl', 'https://sqs.us-east-1.amazonaws.com/123456789012/spot'), field: 'spot.interruptionQueueUrl', expected: /queue in the plan's region ap-northeast-1 \(this one is in us-east-1\)/ },
];

/** Words zod uses by default; none of them should reach a person. */
const DEFAULT_ZOD_WORDING = /Invalid input|Invalid option|Too (big|small)|Unrecognized key|received|Invalid string/;

describe('malformed plans', () => {
  it('has at least 50 distinct cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(50);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    let text = c.text;
    if (text === undefined) {
      const plan = example();
      c.edit!(plan);
      text = stringify(plan);
    }
    const problems = problemsOf(text);
    const fields = problems.map((p) => p.field).sort();
    expect(fields).toEqual([c.field, ...(c.also ?? [])].sort());
    const problem = problems.find((p) => p.field === c.field)!;
    expect(problem.expected).toMatch(c.expected);
    for (const p of problems) {
      expect(p.expected).not.toMatch(DEFAULT_ZOD_WORDING);
      expect(p.expected.length).toBeGreaterThan(8);
    }
  });
});

describe('plan errors', () => {
  it('reports every problem in one pass, cross-field ones included', () => {
    const plan = example();
    plan.region = 'tokyo';
    plan.services[1].name = 'backend';
    plan.target.subnetIds = ['subnet-1'];
    plan.ingress.adminCidrs = ['0.0.0.0/0'];
    const fields = problemsOf(stringify(plan)).map((p) => p.field);
    expect(fields).toEqual(expect.arrayContaining(['region', 'services[1].name', 'target.subnetIds[0]', 'ingress.adminCidrs[0]']));
    expect(fields).toHaveLength(4);
  });

  it('names the line a problem is on', () => {
    const text = EXAMPLE_TEXT.replace('  subnetIds: [subnet-0123456789abcdef0]', '  subnetIds: [subnet-bad]');
    const line = text.split('\n').findIndex((l) => l.includes('subnet-bad')) + 1;
    const [problem] = problemsOf(text);
    expect(problem).toEqual(expect.objectContaining({ field: 'target.subnetIds[0]', line }));
  });

  it('says what was expected in its message, one line per problem', () => {
    const err = (() => {
      try {
        parsePlanText('name: app\nregion: 5\n', 'my-plan.yaml');
      } catch (e) {
        return e as PlanError;
      }
      throw new Error('accepted');
    })();
    expect(err).toBeInstanceOf(PlanError);
    expect(err.name).toBe('PlanError');
    expect(err.source).toBe('my-plan.yaml');
    expect(err.message).toMatch(/^invalid plan my-plan\.yaml:\n/);
    expect(err.message).toContain('  - region (line 2): expected string, got number');
    expect(err.message).toContain('  - source: expected mapping (required key is missing)');
    expect(err.message.split('\n')).toHaveLength(err.problems.length + 1);
  });

  it('validatePlan checks data that did not come from text', () => {
    expect(() => validatePlan({ ...minimal(), region: 'mars-1' })).toThrow(PlanError);
    expect(() => validatePlan('a string')).toThrow(/\(plan\): expected mapping, got string/);
  });

  it('loadPlanFile reports a file it cannot read', async () => {
    const missing = join(tmpdir(), 'ec2-gpu-migration-no-such-plan.yaml');
    await expect(loadPlanFile(missing)).rejects.toMatchObject({ problems: [{ field: '(file)', expected: expect.stringMatching(/readable plan file \(ENOENT\)/) }] });
  });
});

describe('valid plans', () => {
  it('loads the example file', async () => {
    const plan = await loadPlanFile(EXAMPLE_FILE);
    expect(plan.name).toBe('video-message-app');
    expect(plan.target).toMatchObject({ instanceType: 'g4dn.xlarge', market: 'spot', fallbackInstanceTypes: ['g4dn.2xlarge', 'g5.xlarge'] });
    expect(plan.services.map((s) => [s.name, s.port, s.public])).toEqual([
      ['backend', 55433, true],
      ['frontend', 55434, true],
      ['openvoice', 8001, false],
      ['voicevox', 50021, false],
    ]);
    expect(plan.checks.voiceClone).toMatchObject({ service: 'backend', method: 'POST', maxSeconds: 2, body: { text: 'こんにちは', speaker: 1 } });
  });

  it('fills every default', () => {
    const plan = validatePlan(minimal());
    expect(plan.target.market).toBe('on-demand');
    expect(plan.target.fallbackInstanceTypes).toEqual([]);
    expect(plan.target.rootVolume).toEqual({ sizeGiB: 30, type: 'gp3' });
    expect(plan.remote).toEqual({ setup: [], deploy: [], build: [], start: [] });
    expect(plan.services).toEqual([{ name: 'web', port: 8080, healthPath: '/', public: false }]);
    expect(plan.ingress).toEqual({ publicCidrs: ['0.0.0.0/0'], adminCidrs: [], allowSshFromAnywhere: false, revokeUnplanned: false });
    expect(plan.checks).toEqual({ host: 'auto', requestTimeoutSeconds: 10, interval: '10s', attempts: 30 });
    expect(plan.approval).toEqual({ timeout: '7d', approvers: [] });
    expect(plan.spot).toEqual({ pollInterval: '5s', interruptionQueueUrl: null });
  });

  it('fills defaults inside sections that are partly written', () => {
    const data = minimal();
    data.target.rootVolume = { sizeGiB: 100 };
    data.checks = { voiceClone: { service: 'web', path: '/tts' }, latency: { service: 'web', path: '/' } };
    data.services[0].public = true;
    data.spot = { interruptionQueueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/spot-events' };
    const plan = validatePlan(data);
    expect(plan.target.rootVolume).toEqual({ sizeGiB: 100, type: 'gp3' });
    expect(plan.checks.voiceClone).toEqual({ service: 'web', path: '/tts', method: 'POST', body: {}, maxSeconds: 2 });
    expect(plan.checks.latency).toEqual({ service: 'web', path: '/', samples: 5, maxAverageMs: 50 });
    expect(plan.spot.pollInterval).toBe('5s');
  });

  it('reads JSON plans', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plan-'));
    try {
      const file = join(dir, 'plan.json');
      await writeFile(file, JSON.stringify(example(), null, 2));
      const fromJson = await loadPlanFile(file);
      expect(fromJson).toEqual(parsePlanText(EXAMPLE_TEXT));
      expect(parsePlanText(JSON.stringify(minimal())).name).toBe('app');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('accepts SSH from anywhere when asked for on purpose, and private-network admin CIDRs', () => {
    const data = minimal();
    data.ingress = { adminCidrs: ['0.0.0.0/0', '10.0.0.0/8'], allowSshFromAnywhere: true };
    expect(validatePlan(data).ingress.adminCidrs).toEqual(['0.0.0.0/0', '10.0.0.0/8']);
  });

  it('accepts an SSM parameter, an instance profile ARN and a host name for checks', () => {
    const data = minimal();
    delete data.target.imageId;
    data.target.imageParameter = '/golden/app/ami-id';
    data.target.iamInstanceProfile = 'arn:aws:iam::123456789012:instance-profile/app-ssm';
    data.checks = { host: 'app.example.com' };
    expect(validatePlan(data).target.imageParameter).toBe('/golden/app/ami-id');
  });

  it('returns plain data that survives a JSON round trip (workflow input)', () => {
    const plan = parsePlanText(EXAMPLE_TEXT);
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });
});

describe('helpers', () => {
  it('isCidr', () => {
    for (const ok of ['0.0.0.0/0', '203.0.113.0/24', '10.0.0.1/32', '255.255.255.255/32']) expect(isCidr(ok)).toBe(true);
    for (const bad of ['10.0.0.0/33', '300.1.1.1/8', '10.0.0.0', '10.0.0/8', '010.0.0.0/8', '10.0.0.0/08', ' 10.0.0.0/8', '::/0']) expect(isCidr(bad)).toBe(false);
  });

  it('canonicalCidr', () => {
    expect(canonicalCidr('10.1.2.3/8')).toBe('10.0.0.0/8');
    expect(canonicalCidr('203.0.113.77/28')).toBe('203.0.113.64/28');
    expect(canonicalCidr('255.255.255.255/0')).toBe('0.0.0.0/0');
    expect(canonicalCidr('192.0.2.1/32')).toBe('192.0.2.1/32');
  });

  it('durationMs', () => {
    expect(durationMs('500ms')).toBe(500);
    expect(durationMs('5s')).toBe(5_000);
    expect(durationMs('10m')).toBe(600_000);
    expect(durationMs('2h')).toBe(7_200_000);
    expect(durationMs('7d')).toBe(604_800_000);
    expect(() => durationMs('7 days')).toThrow(TypeError);
  });
});

describe('examples', () => {
  const dir = join(__dirname, '..', '..', 'examples');
  it.each(readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f)))('%s is a valid plan', async (file) => {
    const plan = await loadPlanFile(join(dir, file));
    expect(plan.name).toMatch(/^[a-z0-9-]+$/);
  });

  it('the JSON example gets the on-demand defaults', async () => {
    const plan = await loadPlanFile(join(dir, 'minimal-on-demand.json'));
    expect(plan.target.market).toBe('on-demand');
    expect(plan.remote.deploy).toEqual([]);
    expect(plan.ingress.adminCidrs).toEqual([]);
  });
});
