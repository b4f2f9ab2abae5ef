#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { registerCleanup } from './cli/commands/cleanup';
import { registerCodecServer } from './cli/commands/codec-server';
import { registerDecide } from './cli/commands/decide';
import { registerEvents } from './cli/commands/events';
import { registerIamPolicy } from './cli/commands/iam-policy';
import { registerPlan } from './cli/commands/plan';
import { registerReport } from './cli/commands/report';
import { registerStart } from './cli/commands/start';
import { registerStatus } from './cli/commands/status';
import { registerInterrupt } from './cli/commands/interrupt';
import { registerWorker } from './cli/commands/worker';
import { defaultContext, type CliContext } from './cli/context';
import { EXIT, handleError } from './cli/errors';

/** Runs the CLI on `argv` (without node and script) and returns the exit code. */
export async function main(
  argv: string[],
  ctx: CliContext & { close?: () => Promise<void> } = defaultContext(),
): Promise<number> {
  let code: number = EXIT.ok;
  const done = (c: number) => {
    code = c;
  };
  const program = new Command('migration')
    .description(
      'Move a running EC2 service onto a GPU instance with a durable Temporal workflow, and keep it alive on Spot.',
    )
    .exitOverride()
    .configureOutput({ writeOut: ctx.out, writeErr: ctx.err })
    .showHelpAfterError('(run `migration --help` for usage)');
  registerStart(program, ctx, done);
  registerStatus(program, ctx, done);
  registerDecide(program, ctx, done);
  registerReport(program, ctx, done);
  registerPlan(program, ctx, done);
  registerInterrupt(program, ctx, done);
  registerWorker(program, done);
  registerIamPolicy(program, ctx, done);
  registerCleanup(program, ctx, done);
  registerCodecServer(program, ctx, done);
  registerEvents(program, ctx, done);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are fine; anything else is a usage error (commander printed it).
      code = err.exitCode === 0 ? EXIT.ok : EXIT.badInput;
    } else {
      code = handleError(err, ctx.err);
    }
  } finally {
    await ctx.close?.();
  }
  return code;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.exitCode = handleError(err);
    },
  );
}
