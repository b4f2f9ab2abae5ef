// Histories as proto3 JSON through @temporalio/common's own historyFromJSON/historyToJSON. They
// check message types with `instanceof` against their copy of protobufjs: when npm installed
// separate copies for @temporalio/common and @temporalio/proto (protobufjs 7 of
// @grpc/proto-loader taking the top of node_modules), both threw "type must be a Type". The
// package pins protobufjs 8 at the top so that every @temporalio package shares one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils';

const recorded = JSON.parse(readFileSync(join(__dirname, '..', 'histories', 'completed-on-demand.json'), 'utf8')) as {
  history: { events: unknown[] };
};

test('a recorded history goes from JSON to a History and back unchanged', () => {
  const history = historyFromJSON(recorded.history);
  expect(history.events?.length).toBe(recorded.history.events.length);
  expect(history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name).toBe('migrateToGpu');
  expect(JSON.parse(historyToJSON(history))).toEqual(recorded.history);
});

test('one copy of protobufjs serves @temporalio/common and @temporalio/proto', () => {
  const from = (pkg: string) => require.resolve('protobufjs', { paths: [require.resolve(`${pkg}/package.json`)] });
  expect(from('@temporalio/common')).toBe(from('@temporalio/proto'));
  expect(from('@temporalio/worker')).toBe(from('@temporalio/proto'));
});
