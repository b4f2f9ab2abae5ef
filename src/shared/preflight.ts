/** What preflight found in AWS. Pure: workflow code imports this file. */
import type { InstanceInfo } from './launch';
import type { AddressInfo } from './network';

export interface InstanceTypeFacts {
  instanceType: string;
  vcpus?: number;
  memoryMiB?: number;
  gpus?: string;
}

export interface PreflightResult {
  source: InstanceInfo;
  address: AddressInfo;
  imageId: string;
  imageName?: string;
  subnets: { subnetId: string; availabilityZone?: string }[];
  instanceTypes: InstanceTypeFacts[];
  /** What DryRun proved we may do. */
  permissions: string[];
  warnings: string[];
  attempt: number;
}
