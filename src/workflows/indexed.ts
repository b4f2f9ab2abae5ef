/**
 * A Keyword search attribute that follows a value of the run, for the Web UI's lists.
 */
import { patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { PLAN_NAME } from '../shared/search-attributes';

/** A Keyword attribute's key (each of ours has this type). */
type KeywordKey = typeof PLAN_NAME;

/**
 * Upserted when its value changes, and only where the run was started with `startedWith` set
 * (so the namespace has the attributes) by code that knows the `search-attributes` patch: on a
 * namespace without them, an upsert would fail every workflow task.
 */
export class IndexedKeyword {
  /** Whether the run keeps the attribute. */
  readonly on: boolean;
  private last: string | undefined;

  constructor(
    private readonly key: KeywordKey,
    startedWith: KeywordKey = key,
  ) {
    const attributes = workflowInfo().typedSearchAttributes;
    this.on = patched('search-attributes') && attributes.get(startedWith) !== undefined;
    this.last = attributes.get(key);
  }

  set(value: string): void {
    if (!this.on || value === this.last) return;
    upsertSearchAttributes([{ key: this.key, value }]);
    this.last = value;
  }
}
