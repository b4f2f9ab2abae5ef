/** What AWS-RunShellScript runs and keeps: the script, its timeout, and where SSM cuts the output. Pure. */

/** GetCommandInvocation keeps the first 24,000 characters of stdout and the first 8,000 of stderr. */
export const SSM_KEEPS = { stdout: 24_000, stderr: 8_000 } as const;
/** AWS-RunShellScript's executionTimeout: whole seconds from 1 to 172800 (48 h). */
export const MAX_EXECUTION_SECONDS = 172_800;

/**
 * The script SSM runs. AWS-RunShellScript reports the exit code of the script's last line, so a
 * failing line in the middle would go unnoticed: the script stops at the first failing line.
 */
export function shellScript(commands: readonly string[]): string[] {
  return ['set -e', ...commands];
}

/** Whole seconds within what AWS-RunShellScript accepts as executionTimeout. */
export function executionTimeout(seconds: number): string {
  return String(Math.min(MAX_EXECUTION_SECONDS, Math.max(1, Math.ceil(seconds))));
}

/** Says which streams SSM cut to their head (the end of the step's output, often the error, is lost). */
export function outputCut(stdout: string | undefined, stderr: string | undefined): string | undefined {
  const cut = [
    (stdout?.length ?? 0) >= SSM_KEEPS.stdout
      ? `stdout (SSM keeps its first ${SSM_KEEPS.stdout.toLocaleString('en-US')} characters)`
      : undefined,
    (stderr?.length ?? 0) >= SSM_KEEPS.stderr
      ? `stderr (SSM keeps its first ${SSM_KEEPS.stderr.toLocaleString('en-US')} characters)`
      : undefined,
  ].filter(Boolean);
  return cut.length
    ? `the output was cut by SSM: ${cut.join(', ')}; the end of the step's output is not in it`
    : undefined;
}
