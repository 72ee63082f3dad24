// The gateway's session state, as walstate hands it to JS: the shape of
// walstate.example.GatewaySession (proto/example/gateway.proto). int64
// fields are bigint; an absent key is the field's default.

export interface WarmupState {
  last_warmup_at_ms?: bigint;
  warmup_count?: number;
  warmup_hits?: number;
  disabled?: boolean;
  force_keep_warm?: boolean;
}

export interface Calibration {
  dynamic_context_cap?: number;
  bust_rate_ema?: number;
  inter_bust_interval_ema?: number;
  last_layer?: number;
  last_known_input?: bigint;
  last_turn_at?: bigint;
  last_bust_at?: bigint;
}

export interface CostTracker {
  conversation_cost?: number;
  worker_cost?: number;
  conversation_turns?: bigint;
  cache_read_tokens?: bigint;
  cache_write_tokens?: bigint;
  warmup_savings?: number;
  warmup_hits?: bigint;
}

export interface GatewaySession {
  // IMMEDIATE (durable before update() resolves), indexed.
  fingerprint?: string;
  header_session_id?: string;
  header_name?: string;
  // BATCHED (in memory at once, written by the 30 s tick).
  resolved_conversation_ttl?: string;
  warmup?: WarmupState;
  calibration?: Calibration;
  cost?: CostTracker;
}
