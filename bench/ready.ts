/** The line bench/worker-process.ts prints once its worker polls. */
export const READY_LINE = 'bench-worker ready';
