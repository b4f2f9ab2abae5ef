/** What the benchmarks write: results.json's shape, the printed table, BENCHMARKS.md's figures. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { promisify } from 'node:util';
import type { FleetResult } from './sections/fleet';
import type { LongLifeResult } from './sections/long-life';
import type { MigrationResult } from './sections/migration';
import type { RecoveryResult } from './sections/recovery';
import type { WarningResult } from './sections/warning';
import { toolPaths } from '../test/harness/tools';
import { round, type Summary } from './stats';

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  temporalCli: string;
  moto: string;
  loadAverage: number[];
  loadAverageAtEnd?: number[];
}

export interface Results {
  mode: 'quick' | 'full';
  startedAt: string;
  durationSeconds?: number;
  machine: Machine;
  sections: {
    recovery?: RecoveryResult;
    warning?: WarningResult;
    migration?: MigrationResult;
    fleet?: FleetResult;
    longLife?: LongLifeResult;
  };
}

async function run(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(cmd, args, { timeout: 10_000 });
    return stdout.trim();
  } catch {
    return 'unknown';
  }
}

export async function machineFacts(): Promise<Machine> {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const info = await readFile('/proc/cpuinfo', 'utf8');
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? cpuModel;
  } catch {
    // not Linux: os.cpus() it is
  }
  // The same binaries the stack runs: from the environment or the bootstrap's tools.env.
  const tools = (() => {
    try {
      return toolPaths();
    } catch {
      return undefined;
    }
  })();
  const temporalBin = tools?.temporalBin;
  const motoPython = tools?.motoPython;
  return {
    cpus: Number(await run('nproc', [])) || cpus().length,
    cpuModel,
    memoryGiB: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    temporalCli:
      temporalBin && existsSync(temporalBin) ? (await run(temporalBin, ['--version'])).split('\n')[0] : 'unknown',
    moto:
      motoPython && existsSync(motoPython)
        ? await run(motoPython, ['-c', 'import moto; print(moto.__version__)'])
        : 'unknown',
    loadAverage: loadavg().map((l) => round(l, 2)),
  };
}

// --- formatting -------------------------------------------------------------------------------

const ms = (v: number) => (Number.isFinite(v) ? `${round(v)} ms` : '–');
const sec = (v: number, digits = 2) => (Number.isFinite(v) ? `${(v / 1000).toFixed(digits)} s` : '–');
/** `412 ms (p5 380 – p95 520)` */
const spread = (s: Summary | undefined, f: (v: number) => string = ms) =>
  s && s.n ? `${f(s.median)} (p5 ${f(s.p5)} – p95 ${f(s.p95)})` : '–';
const verdict = (met: boolean | undefined) => (met === undefined ? '' : met ? 'met' : '**missed**');

interface Row {
  section: string;
  figure: string;
  value: string;
  target: string;
  verdict: string;
}

export function rows(r: Results): Row[] {
  const out: Row[] = [];
  const add = (section: string, figure: string, value: string, target = '', v = '') =>
    out.push({ section, figure, value, target, verdict: v });
  const s = r.sections;
  if (s.recovery) {
    const x = s.recovery;
    add(
      '1 recovery',
      `notice → EIP on healthy replacement, p50 (n ${x.recorded.n})`,
      spread(x.recorded),
      '≤ 1 s',
      verdict(x.target.met),
    );
    add('1 recovery', 'p95', ms(x.recorded.p95), '', '');
    add('1 recovery', '  EIP answered by AWS (proxy clock)', spread(x.eipAnswered));
    for (const [k, label] of [
      ['pickup', 'notice → router pickup'],
      ['launch', 'launch (activity)'],
      ['start', 'remote.start (activity)'],
      ['checks', 'service checks (activity)'],
      ['eip', 'EIP move (activity)'],
      ['orchestration', 'signal + workflow tasks + dispatch'],
    ] as const) {
      add('1 recovery', `  ${label}`, spread(x.steps[k]));
    }
  }
  if (s.warning) {
    for (const c of s.warning.cases) {
      add(
        '2 downtime',
        `${c.name}: seconds the EIP points at nothing that serves (n ${c.samples.length})`,
        `${sec(c.downtime.median, 1)} (max ${sec(c.downtime.max, 1)})`,
        c.target ?? '',
        c.target ? verdict(c.met) : '',
      );
      add(
        '2 downtime',
        `  notice → EIP moved, real (×${s.warning.timeScale})`,
        `${sec(c.recovery.median * s.warning.timeScale, 0)}; the interruption at ${sec(c.deadlineMs * s.warning.timeScale, 0)}`,
      );
    }
  }
  if (s.migration) {
    const m = s.migration;
    add(
      '3 migration',
      `Temporal, whole migration (n ${m.temporal.n})`,
      spread(m.temporal, (v) => sec(v)),
    );
    add(
      '3 migration',
      'plain sequential script, same calls',
      spread(m.script, (v) => sec(v)),
    );
    add(
      '3 migration',
      'ratio Temporal / script (paired)',
      `${m.ratio.median.toFixed(2)}× (p5 ${m.ratio.p5.toFixed(2)} – p95 ${m.ratio.p95.toFixed(2)})`,
      '≤ 1.5×',
      verdict(m.target.met),
    );
    add('3 migration', `  Temporal: ${m.calls.length} activities' execution`, spread(m.breakdown.activities));
    add('3 migration', '  Temporal: between activities (workflow tasks)', spread(m.breakdown.workflowTasks));
    add('3 migration', '  Temporal: activity schedule-to-start, summed', spread(m.breakdown.activityQueue));
    add('3 migration', '  Temporal: workflow task schedule-to-start, each', spread(m.breakdown.workflowTaskWait));
    add(
      '3 migration',
      '  script: the same calls',
      `${spread(m.breakdown.scriptActivities)}${m.sameCalls ? '' : ' (the call lists differ!)'}`,
    );
  }
  if (s.fleet) {
    const f = s.fleet;
    add(
      '4 fleet',
      `${f.migrations.count} migrations at once (${f.migrations.regions} region${f.migrations.regions > 1 ? 's' : ''}): all done`,
      `${sec(f.migrations.wallMs, 1)}${f.migrations.failed.length ? ` (${f.migrations.failed.length} failed)` : ''}`,
    );
    add(
      '4 fleet',
      '  per migration',
      spread(f.migrations.perMigration, (v) => sec(v, 1)),
    );
    add(
      '4 fleet',
      '  worker peak RSS (idle before)',
      `${round(f.migrations.worker.peakMiB)} MiB (${round(f.migrations.worker.idleMiB)} MiB)`,
      '≤ 512 MiB',
      verdict(f.migrations.worker.peakMiB <= 512),
    );
    add('4 fleet', '  activity schedule-to-start', spread(f.migrations.activityWait));
    add('4 fleet', '  workflow task schedule-to-start', spread(f.migrations.workflowTaskWait));
    add(
      '4 fleet',
      `${f.guardians.count} guardians: all tagged / router knows all`,
      `${sec(f.guardians.taggedMs, 1)} / ${sec(f.guardians.wallMs, 1)}`,
    );
    add(
      '4 fleet',
      '  worker peak RSS (idle before)',
      `${round(f.guardians.worker.peakMiB)} MiB (${round(f.guardians.worker.idleMiB)} MiB)`,
      '≤ 512 MiB',
      verdict(f.guardians.worker.peakMiB <= 512),
    );
    add(
      '4 fleet',
      '  tag-key DescribeInstances per poll',
      `${f.guardians.describePerPoll.toFixed(2)} (${f.guardians.describeCalls} calls / ${f.guardians.polls} polls)`,
      '1 (± 1 call at the edges)',
      verdict(f.guardians.describeCalls <= f.guardians.polls + 1),
    );
    add('4 fleet', '  one batched scan of all', spread(f.guardians.scanMs));
    add('4 fleet', '  activity schedule-to-start', spread(f.guardians.activityWait));
    add('4 fleet', '  workflow task schedule-to-start', spread(f.guardians.workflowTaskWait));
    if (f.guardians.recovery)
      add('4 fleet', `  recovery with ${f.guardians.count} guarded`, spread(f.guardians.recovery));
  }
  if (s.longLife) {
    const l = s.longLife;
    add(
      '5 long life',
      `router: ${l.router.watches} watches of ${l.router.watchMs / 1000} s (${l.router.polls} polls at ${l.pollIntervalMs / 1000} s), ${l.router.watchesPerRun} per run`,
      `${l.router.runs} runs, ${l.router.closedRuns} continued as new, ${l.router.totalEvents} events in all`,
    );
    add(
      '5 long life',
      '  per watch: events / billed actions / heartbeats',
      `${l.router.eventsPerWatch.toFixed(1)} / ${l.router.actionsPerWatch.toFixed(1)} / ${l.router.heartbeatsPerWatch.toFixed(1)} (+ ${Math.round(l.router.eventsPerRunFixed)} events, ${Math.round(l.router.actionsPerRunFixed)} actions per run)`,
      `heartbeats ≤ ${1 + Math.floor(l.router.watchMs / l.router.heartbeatMs)}`,
      verdict(l.router.heartbeatsPerWatch <= 1 + Math.floor(l.router.watchMs / l.router.heartbeatMs) + 0.5),
    );
    add(
      '5 long life',
      '  largest run (measured)',
      `${l.router.maxEventsPerRun} events`,
      '< 10,240',
      verdict(l.router.maxEventsPerRun < 10_240),
    );
    add(
      '5 long life',
      `guardian: ${l.guardian.recoveries} recoveries, ${l.guardian.runs} runs`,
      `${spread(l.guardian.eventsPerRecoveryRun, (v) => `${round(v)}`)} events per recovery run; ${l.guardian.totalEvents} in all`,
    );
    add(
      '5 long life',
      '  events the polls added to the guardian',
      String(l.guardian.eventsAddedByPolls),
      '0',
      verdict(l.guardian.eventsAddedByPolls === 0),
    );
    add('5 long life', '  recovery (notice → EIP)', spread(l.guardian.recovery));
    add(
      '5 long life',
      'a month of 5 s polls (extrapolated)',
      `router: ${l.month.routerRuns} runs of ≈ ${l.month.routerEventsPerRun} events (${l.month.routerEvents.toLocaleString('en')} in all); guardian with 10 recoveries: ≈ ${l.month.guardianEvents} events in 11 runs`,
      'each run < 10,240',
      verdict(l.month.routerEventsPerRun < 10_240),
    );
    add(
      '5 long life',
      '  router: Temporal Cloud actions a month (extrapolated)',
      `${l.month.routerActions.toLocaleString('en')} (${l.month.watches} watches, ${l.month.heartbeats.toLocaleString('en')} heartbeats)`,
      '< 50,000',
      verdict(l.month.routerActions < 50_000),
    );
  }
  return out;
}

export function renderTable(r: Results): string {
  const list = rows(r);
  const head: Row = { section: 'section', figure: 'figure', value: 'median (spread)', target: 'target', verdict: '' };
  const all = [head, ...list];
  const w = (k: keyof Row) => Math.max(...all.map((x) => x[k].length));
  const line = (x: Row) =>
    `${x.section.padEnd(w('section'))}  ${x.figure.padEnd(w('figure'))}  ${x.value.padEnd(w('value'))}  ${x.target.padEnd(w('target'))}  ${x.verdict.replace(/\*/g, '')}`;
  return [line(head), '-'.repeat(line(head).length), ...list.map(line)].join('\n');
}

export function renderMarkdownFigures(r: Results): string {
  const m = r.machine;
  const lines = [
    `Run: **${r.mode}**, ${r.startedAt}, ${r.durationSeconds ?? '?'} s. Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Node ${m.node}, ${m.temporalCli}, moto ${m.moto}; load average (1/5/15 min) ${m.loadAverage.join(' / ')} at the start, ${m.loadAverageAtEnd?.join(' / ') ?? '?'} at the end.`,
    '',
    '| section | figure | median (spread) | target | |',
    '|---|---|---|---|---|',
    ...rows(r).map(
      (x) => `| ${x.section} | ${x.figure.replace(/^ {2}/, '↳ ')} | ${x.value} | ${x.target} | ${x.verdict} |`,
    ),
  ];
  const s = r.sections;
  if (s.recovery) {
    lines.push(
      '',
      '**1 — each recovery** (ms; activity times are start → close as the server saw them):',
      '',
      '| # | notice → EIP (guardian) | pickup | launch | start | checks | EIP move | orchestration |',
      '|---|---|---|---|---|---|---|---|',
    );
    s.recovery.samples.forEach((x, i) =>
      lines.push(
        `| ${i + 1} | ${round(x.recordedMs)} | ${round(x.pickupMs)} | ${round(x.launchMs)} | ${round(x.startMs)} | ${round(x.checksMs)} | ${round(x.eipMs)} | ${round(x.orchestrationMs)} |`,
      ),
    );
  }
  if (s.warning) {
    const inj = s.warning.injected;
    const scale = s.warning.timeScale;
    const real = (x: number | undefined) => sec((x ?? 0) * scale, 1);
    lines.push(
      '',
      `**2 — the timeline injected** (real; run at 1/${scale}): RunInstances → running ${real(inj.launchToRunningMs)}, then the SSM agent online ${real(inj.agentAfterRunningMs)} later, a new instance unknown by id for ${real(inj.consistencyLagMs)}, \`remote.start\` on a fresh volume ${real(inj.firstBootReadMs)} of lazy reads from the snapshot plus ${real(inj.modelStartMs)} for the services and the model, the Elastic IP ${real(inj.eipMs)} to take effect, API calls ${real(inj.apiMinMs)}–${real(inj.apiMaxMs)}, the interruption ${real(inj.warningMs)} after the warning, SSM polled every ${real(inj.ssmPollMs)}.`,
    );
    for (const c of s.warning.cases)
      lines.push(
        `- ${c.name}: ${c.about}. Downtime per run (s): ${c.samples.map((x) => x.downtimeS.toFixed(1)).join(', ')}. Old instance when the EIP moved: ${[...new Set(c.samples.map((x) => x.oldStateAtMove))].join(', ')}.`,
      );
  }
  if (s.fleet) {
    const f = s.fleet;
    const cpu = (c: Record<string, number>) =>
      Object.entries(c)
        .map(([k, v]) => `${k} ${v} s`)
        .join(', ');
    lines.push(
      '',
      `**4 — CPU seconds used** while the ${f.migrations.count} migrations ran (${sec(f.migrations.wallMs, 1)} wall on ${m.cpus} cores): ${cpu(f.migrations.cpuSeconds)}.`,
    );
    lines.push(
      `While the ${f.guardians.count} guardians started (${sec(f.guardians.wallMs, 1)}): ${cpu(f.guardians.cpuSeconds)}.`,
    );
    const heapLine = (
      what: string,
      h?: { rssMiB: number; heapUsedMiB: number; heapTotalMiB: number; externalMiB: number },
    ) =>
      h
        ? lines.push(
            `Worker ${what}: RSS ${h.rssMiB} MiB, V8 heap used ${h.heapUsedMiB} of ${h.heapTotalMiB} MiB, external ${h.externalMiB} MiB; the rest of the RSS is native (the SDK's Rust core and its caches, Node itself).`,
          )
        : 0;
    heapLine(`with ${f.migrations.count} migrations, at its highest sample`, f.migrations.worker.heap);
    heapLine(`with ${f.guardians.count} guardians, at its highest sample`, f.guardians.worker.heap);
    const retried = Object.entries(f.migrations.retriedActivities ?? {});
    lines.push(
      `Activities of the ${f.migrations.count} migrations that needed a retry: ${retried.length ? retried.map(([k, v]) => `${k} ${v}`).join(', ') : 'none'}${f.migrations.failed.length ? `; failed runs: ${f.migrations.failed.join('; ')}` : ''}.`,
    );
    lines.push(
      '',
      `Phases of the ${f.migrations.count} migrations at once (median / p95 ms, runs whose phase needed a retry):`,
      '',
      '| phase | median | p95 | retried |',
      '|---|---|---|---|',
    );
    for (const [name, p] of Object.entries(f.migrations.phases))
      lines.push(`| ${name} | ${round(p.duration.median)} | ${round(p.duration.p95)} | ${p.retried} |`);
    for (const [i, x] of (f.guardians.recoverySamples ?? []).entries()) {
      lines.push(
        '',
        `Recovery ${i + 1} with ${f.guardians.count} guarded: ${round(x.recordedMs)} ms = pickup ${round(x.pickupMs)}, launch ${round(x.launchMs)}, start ${round(x.startMs)}, checks ${round(x.checksMs)}, EIP ${round(x.eipMs)}, orchestration ${round(x.orchestrationMs)}; slowest local-AWS calls meanwhile: ${x.slowestAws.map((c) => `${c.action} ${c.ms} ms`).join(', ')}.`,
      );
    }
  }
  if (s.longLife) {
    const l = s.longLife;
    lines.push(
      '',
      `**5 — router runs** (events each, closed by continue-as-new): ${l.router.eventsPerClosedRun.join(', ')}. The month is ${l.month.polls.toLocaleString('en')} polls made inside ${l.month.watches} idle watches of an hour (each returns at its time, and sooner with news), 200 per run; each watch heartbeats at its start and every minute. Heartbeats are counted as called, an upper bound on those the SDK sends.`,
    );
  }
  return lines.join('\n');
}

const BEGIN = '<!-- bench:figures:begin (written by `npm run bench`; edit outside these markers) -->';
const END = '<!-- bench:figures:end -->';

/**
 * Replaces the figures between the markers of `file`. A file that does not exist yet starts as a
 * copy of `template` (the repository's BENCHMARKS.md), or as a bare page.
 */
export async function updateBenchmarksMd(file: string, r: Results, template?: string): Promise<void> {
  const figures = `${BEGIN}\n${renderMarkdownFigures(r)}\n${END}`;
  const from = existsSync(file) ? file : template && existsSync(template) ? template : undefined;
  let text = from ? await readFile(from, 'utf8') : '';
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) text = text.slice(0, a) + figures + text.slice(b + END.length);
  else text = `# Benchmarks\n\n${figures}\n`;
  await writeFile(file, text);
}
