/**
 * The building blocks of the plan schema: AWS ids, CIDR blocks, durations, commands, instance
 * types, HTTP paths and service names, each with the message the loader prints after
 * "<field>: expected". Pure.
 */
import { z } from 'zod';
import { canonicalCidr, CIDR_PATTERN } from './cidr';
import { DURATION_PATTERN, POSITIVE_DURATION } from './duration';

export const awsId = (prefix: string, what: string, description: string) =>
  z
    .string()
    .regex(new RegExp(`^${prefix}-[0-9a-f]{8,17}$`), `${what} like ${prefix}-0123456789abcdef0`)
    .describe(description);

export const cidr = z
  .string()
  .regex(CIDR_PATTERN, { message: 'an IPv4 CIDR block such as 203.0.113.0/24 or 0.0.0.0/0', abort: true })
  .refine((v) => canonicalCidr(v) === v, {
    error: (iss) => `the block's network address, ${canonicalCidr(String(iss.input))} (host bits are set)`,
  });

export const duration = (description: string) =>
  z
    .string()
    .regex(POSITIVE_DURATION, 'a duration such as 5s, 10m, 2h or 7d (a whole number > 0 and a unit ms, s, m, h or d)')
    .describe(description);

/** A duration where 0 (in any unit) means "never" or "not at all". */
export const durationOrZero = (description: string) =>
  z
    .string()
    .regex(
      DURATION_PATTERN,
      'a duration such as 0s, 3m, 1h or 7d (a whole number and a unit ms, s, m, h or d; 0 = off)',
    )
    .describe(description);

const command = z.string().regex(/\S/, 'a non-empty shell command');
export const commands = (description: string) => z.array(command).describe(description).default([]);

export const instanceType = z
  .string()
  .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'an EC2 instance type such as g4dn.xlarge')
  .describe('An EC2 instance type, e.g. g4dn.xlarge');

export const httpPath = z.string().regex(/^\/\S*$/, 'an HTTP path starting with /, such as /health');

export const serviceName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,62}$/, 'a service name of lowercase letters, digits and -, starting with a letter')
  .describe('The service name, as in the app (docker-compose service)');

export const HOST_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
