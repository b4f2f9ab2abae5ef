export { migrateToGpu } from './migrate';
export { spotGuardian } from './guardian';
export { spotEventRouter } from './router';
