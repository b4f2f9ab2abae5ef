/** Durations as the plan writes them: 500ms, 5s, 10m, 2h, 7d. Pure: workflows import it. */
export const DURATION_PATTERN = /^(\d+)(ms|s|m|h|d)$/;

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Milliseconds of a plan duration ("5s", "7d"). */
export function durationMs(value: string): number {
  const m = DURATION_PATTERN.exec(value);
  if (!m) throw new TypeError(`not a duration: ${value}`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

/** Positive durations as the plan writes them: 500ms, 5s, 10m, 2h, 7d. */
export const POSITIVE_DURATION = /^[1-9]\d*(?:ms|s|m|h|d)$/;
