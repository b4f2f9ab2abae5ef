/** IPv4 CIDR blocks as the plan writes them. Pure. */

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
