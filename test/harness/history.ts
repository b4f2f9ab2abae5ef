/**
 * Workflow histories as proto3 JSON, the format of `temporal workflow show --output json` and
 * of the Web UI's "Download" (test/histories/ keeps them in it).
 *
 * Why not `historyToJSON` / `historyFromJSON` of @temporalio/common: they check the message
 * type with `instanceof` against the copy of protobufjs that @temporalio/common has, while the
 * History type comes from @temporalio/proto's copy. When npm installs separate copies (it does
 * here, because @grpc/proto-loader keeps protobufjs 7 at the top of node_modules) both fail with
 * "TypeError: type must be a Type", and so does `Worker.runReplayHistory` given JSON. These use
 * the protobufjs that @temporalio/proto was built with, so they work with any layout.
 */
import { createRequire } from 'node:module';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';
import type { History } from '@temporalio/common/lib/proto-utils';

interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
}
type Lookup = { lookupType(name: string): unknown };

const protojson = createRequire(require.resolve('@temporalio/proto'))('protobufjs/ext/protojson') as ProtoJson;
const historyType = (patchProtobufRoot(proto as unknown as Record<string, unknown>) as unknown as Lookup).lookupType(
  'temporal.api.history.v1.History',
);
const HistoryMessage = proto.temporal.api.history.v1.History;

/** A fetched History as proto3 JSON data (ready for JSON.stringify). */
export function historyToJson(history: History): unknown {
  return protojson.toJson(historyType, HistoryMessage.fromObject(history));
}

/** Proto3 JSON data back to a History, as `Worker.runReplayHistories` takes it. */
export function historyFromJson(json: unknown): History {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { events?: unknown }).events)) {
    throw new TypeError('not a workflow history: expected an object with an array of events');
  }
  // Newer servers add fields; they do not matter to replay.
  return protojson.fromJson(historyType, json, { ignoreUnknownFields: true }) as History;
}
