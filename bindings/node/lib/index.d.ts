// walstate for Node.js and Bun. Values cross between JS and protobuf by
// reflection, one representation chosen once:
//   int64/uint64/sint64/fixed64/sfixed64 -> bigint (a safe-integer number is
//     accepted on input); int32/uint32/float/double -> number; bool ->
//     boolean; string -> string; bytes -> Uint8Array (Buffer accepted); enum
//     -> the value's name (a number accepted on input); message -> plain
//     object keyed by the .proto field names as written (no camelCase);
//     repeated -> array; map -> plain object keyed by the key as a string.
// get() lists only fields that are set (proto3 JSON's rule): an absent key
// means the field's default.

/** absl::StatusCode names, as the engine reports them. */
export type StatusCodeName =
  | 'OK' | 'CANCELLED' | 'UNKNOWN' | 'INVALID_ARGUMENT' | 'DEADLINE_EXCEEDED'
  | 'NOT_FOUND' | 'ALREADY_EXISTS' | 'PERMISSION_DENIED' | 'RESOURCE_EXHAUSTED'
  | 'FAILED_PRECONDITION' | 'ABORTED' | 'OUT_OF_RANGE' | 'UNIMPLEMENTED'
  | 'INTERNAL' | 'UNAVAILABLE' | 'DATA_LOSS' | 'UNAUTHENTICATED';

/** Every error walstate throws or rejects with. */
export interface WalstateError extends Error {
  /** The absl status code name, e.g. 'ALREADY_EXISTS' for a UNIQUE clash. */
  code: StatusCodeName;
}

export type Durability = 'IMMEDIATE' | 'BATCHED';

export interface OpenOptions {
  /** The .proto file declaring the session message (parsed at open; no protoc). */
  proto?: string;
  /** Or a serialized google.protobuf.FileDescriptorSet (protoc --include_imports). */
  descriptorSet?: Uint8Array;
  /** Full name of the session message, e.g. 'walstate.example.GatewaySession'. */
  message: string;
  /** Where imports are searched (then the .proto's own directory).
   *  `import "walstate/options.proto"` is resolved by the package itself. */
  includeDirs?: string[];
  /** How often dirty sessions' BATCHED fields are written (default 30000). */
  flushIntervalMs?: number;
  /** Sessions not updated for this long are deleted by expireIdle() and the background thread (0: never). */
  sessionTtlMs?: number;
  /** Tier of fields that declare none (default 'BATCHED'). */
  defaultDurability?: Durability;
  /** Create the directory and an empty store if there is none (default true). */
  createIfMissing?: boolean;
  /** What open does with damage in the log (default 'tolerate-torn-tail'). */
  recoveryMode?: 'strict' | 'tolerate-torn-tail' | 'salvage';
  /** Parse recovered sessions on first use (default true). */
  lazyRecovery?: boolean;
  /** Run the flush/compaction/expiry thread (default true; tests turn it off). */
  backgroundThread?: boolean;
  compactionMinLogBytes?: number;
  compactionIntervalMs?: number;
  maxSegmentBytes?: number;
  groupCommitMaxWaitMs?: number;
  recoveryThreads?: number;
  /** Threads running IMMEDIATE updates, deletes, flush, compact (default 8):
   *  concurrent IMMEDIATE updates share one fdatasync up to this many. */
  writerThreads?: number;
}

export interface UpdateOptions {
  /** Overrides the declared tier of every field of this update. */
  durability?: Durability;
}

export interface StatusInfo { ok: boolean; code: StatusCodeName; message: string }

export interface Stats {
  sessions: number; dirtySessions: number; lazySessions: number; lazyBytes: number;
  lazyMappedBytes: number; lastLsn: number; durableLsn: number; logBytes: number;
  logSegments: number; logBytesSinceSnapshot: number; snapshotBytes: number;
  snapshotLsn: number; snapshotTimeMs: number | null; snapshotsWritten: number;
  fsyncs: number; syncedRecords: number; groupCommitWaits: number;
  groupCommitWaitsInVain: number; immediateUpdates: number; batchedUpdates: number;
  deletes: number; expired: number; ticks: number; lastTickSessions: number;
  lastTickTimeMs: number | null; lastTickDurationMs: number;
  lastTickStatus: StatusInfo; lastCompactionStatus: StatusInfo;
  lastTickYields: number; meanGroupCommitSize: number;
}

export interface Problem { kind: string; file: string; offset: number; bytes: number; detail: string }

export interface RecoveryReport {
  snapshotFile: string; snapshotLsn: number; snapshotSessions: number;
  fellBack: boolean; fallbackReason: string; segmentsRead: number;
  recordsReplayed: number; bytesReplayed: number; bytesSkipped: number;
  lazyReplay: boolean; ticksCommitted: number; ticksAborted: number;
  tornBytesDropped: number; tornFile: string; tornOffset: number;
  lastLsn: number; sessions: number; durationMs: number;
  snapshotDurationMs: number; replayDurationMs: number; indexDurationMs: number;
  problems: Problem[];
  /** The engine's few human-readable lines. */
  text: string;
}

/**
 * One store directory. `T` is the shape of the session message (see the
 * representation above); it defaults to a loose record.
 */
export declare class Store<T extends object = Record<string, unknown>> {
  private constructor();
  /** Loads the schema and recovers the directory on a worker thread. Rejects
   *  with e.g. FAILED_PRECONDITION if another process holds the directory,
   *  or DATA_LOSS naming file and offset. */
  static open<T extends object = Record<string, unknown>>(dir: string, options: OpenOptions): Promise<Store<T>>;
  /** The absolute directory. */
  readonly dir: string;
  /**
   * Sets exactly the top-level fields whose keys are present in `values`
   * (null or undefined clears a field). Touching an IMMEDIATE field: returns
   * a Promise resolved once the change is fdatasynced (on a worker thread;
   * concurrent updates share syncs), rejected with the engine's error.
   * Only BATCHED fields: applied in memory now and returns undefined (no
   * I/O). Either way `await store.update(...)` works. Bad values or unknown
   * fields throw INVALID_ARGUMENT at once. An IMMEDIATE update is applied
   * when its write is made: await it before reading its fields back.
   */
  update(sessionId: string, values: Partial<T>, options?: UpdateOptions): Promise<void> | undefined;
  /** Deletes with a durable tombstone; resolves false if there was none. */
  delete(sessionId: string): Promise<boolean>;
  /** A copy of the session's state, or undefined. Never does I/O. */
  get(sessionId: string): T | undefined;
  has(sessionId: string): boolean;
  /** Every session id, at this moment. */
  keys(): string[];
  /** Sessions whose indexed top-level `field` equals `value`. */
  lookup(field: keyof T & string, value: string | number | bigint | boolean | Uint8Array): string[];
  /** Sessions present when iteration starts (deleted ones skipped). */
  entries(): IterableIterator<[string, T]>;
  [Symbol.iterator](): IterableIterator<[string, T]>;
  [Symbol.asyncIterator](): AsyncIterableIterator<[string, T]>;
  forEach(fn: (state: T, sessionId: string, store: this) => void): void;
  /** Writes a tick now for every dirty session and syncs it. */
  flush(): Promise<void>;
  /** Writes a snapshot now and deletes the log it makes unnecessary. */
  compact(): Promise<void>;
  /** Deletes the sessions not updated for more than `idleMs` milliseconds
   *  (left out: options.sessionTtlMs, and none if that is 0); resolves how
   *  many. Sessions recovered at open count as updated then. Throws
   *  INVALID_ARGUMENT unless idleMs is a number >= 0. */
  expireIdle(idleMs?: number): Promise<number>;
  /** Counters; O(1), takes no session lock. */
  stats(): Stats;
  /** Walks every session (~100 ms at 10^5): for occasional monitoring. */
  approximateMemoryUsage(): number;
  /** ok, or the I/O error that stopped the store accepting updates (reopen). */
  health(): StatusInfo;
  recoveryReport(): RecoveryReport;
  /** Waits for queued writes, flushes the last tick, releases the directory.
   *  Stores still open at process exit are closed the same way (closeSync). */
  close(): Promise<void>;
  /** The same on this thread (blocks): for exit handlers. */
  closeSync(): void;
}

declare const _default: { Store: typeof Store };
export default _default;
