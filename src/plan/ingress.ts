/**
 * The security-group rules a plan asks for: one list, used by the security-group phase, by
 * preflight's DryRun and by what `migration plan` prints, so what is shown is what is done. Pure.
 */
import { parseCidr } from './cidr';
import type { Plan } from './schema';

export interface IngressRule {
  protocol: 'tcp';
  port: number;
  cidr: string;
  /** The service the rule is for; `ssh` for the admin rule on port 22. */
  service: string;
  /** True when addresses outside private networks (RFC 1918 and the like) may use the rule. */
  facesInternet: boolean;
}

export const SSH_PORT = 22;

/** Blocks that no one on the internet can come from. */
const NON_PUBLIC_BLOCKS = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
].map(parseCidr);

/** Whether any address of the block is reachable from the public internet. */
export function facesInternet(cidr: string): boolean {
  const { address, bits } = parseCidr(cidr);
  return !NON_PUBLIC_BLOCKS.some((block) => {
    if (bits < block.bits) return false;
    const size = 2 ** (32 - block.bits);
    return Math.floor(address / size) === Math.floor(block.address / size);
  });
}

/**
 * The ingress the plan asks for: each public service's port from each of `ingress.publicCidrs`,
 * and SSH from each of `ingress.adminCidrs`. Private services get no rule.
 */
export function plannedIngress(plan: Pick<Plan, 'services' | 'ingress'>): IngressRule[] {
  const rules: IngressRule[] = [];
  for (const service of plan.services) {
    if (!service.public) continue;
    for (const cidr of plan.ingress.publicCidrs) {
      rules.push({
        protocol: 'tcp',
        port: service.port,
        cidr,
        service: service.name,
        facesInternet: facesInternet(cidr),
      });
    }
  }
  for (const cidr of plan.ingress.adminCidrs) {
    rules.push({ protocol: 'tcp', port: SSH_PORT, cidr, service: 'ssh', facesInternet: facesInternet(cidr) });
  }
  return rules;
}
