/** Results of the security-group and Elastic IP activities. Pure: workflow code imports this file. */

/** One ingress rule as we compare them: a TCP port (or range) from one IPv4 CIDR. */
export interface Rule {
  protocol: string;
  fromPort: number;
  toPort: number;
  cidr: string;
  description?: string;
}

export interface IngressResult {
  groupId: string;
  /** Rules the plan asks for. */
  planned: Rule[];
  /** Rules this run added (it revokes exactly these on rollback). */
  added: Rule[];
  /** Rules not in the plan that were there before; left alone unless ingress.revokeUnplanned. */
  unplanned: Rule[];
  /** Unplanned rules revoked because the plan said so (restored on rollback). */
  revoked: Rule[];
  /** The group's ingress afterwards, as AWS reports it. */
  final: Rule[];
  attempt: number;
}

export interface AddressInfo {
  allocationId: string;
  publicIp: string;
  instanceId?: string;
  associationId?: string;
}
