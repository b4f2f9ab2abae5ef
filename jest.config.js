/** Four projects: unit tests need nothing running; workflow tests start Temporal's time-skipping
 * test server themselves and stub every activity; integration tests get a real Temporal dev
 * server and moto from the global setup; the chaos set starts a stack of its own. */
const transform = { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] };
module.exports = {
  testTimeout: 120_000,
  // The slow files first, so that no long one starts last and runs alone (see jest.sequencer.js).
  testSequencer: '<rootDir>/jest.sequencer.js',
  projects: [
    { displayName: 'unit', testEnvironment: 'node', transform, testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      displayName: 'workflow',
      testEnvironment: 'node',
      transform,
      testMatch: ['<rootDir>/test/workflow/**/*.test.ts'],
    },
    {
      displayName: 'integration',
      testEnvironment: 'node',
      transform,
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      globalSetup: '<rootDir>/test/harness/global-setup.ts',
      globalTeardown: '<rootDir>/test/harness/global-teardown.ts',
    },
    // The short chaos set: it starts its own stack, so it needs no global setup (scripts/test.sh
    // runs it in a Jest process of its own beside the others).
    { displayName: 'chaos', testEnvironment: 'node', transform, testMatch: ['<rootDir>/test/chaos/**/*.test.ts'] },
  ],
};
