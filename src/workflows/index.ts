export { migrateToGpu } from './migrate';
