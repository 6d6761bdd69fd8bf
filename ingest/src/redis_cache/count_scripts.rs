//! The Lua of a content's cached count: its moves, and its fill from the store, also while the
//! content keeps changing (the *fill epoch*). The state scripts of `scripts.rs` run these on one
//! Redis in the same step; a Cluster runs them on the content's slot on their own.
//!
//! # Why an epoch
//! A count is filled from the store only if it has not moved since the fill's ticket
//! (`likes:{c:<id>}:t`): otherwise the store may lack a change on its way to it. A content that
//! keeps changing never passes that test, and a count lost to an outage or a forget would stay
//! lost, every read paying the store and answering its lagging count. So a refused fill starts
//! an epoch instead (`:e`, its start in Redis's wall-clock ms). While the count is missing, each
//! change applied adds its move to the epoch's sum (`:a`), and its event carries the epoch
//! (`LikeEvent::fill_epoch`). The sink adds up, beside the stored count, how far the epoch's
//! events that it committed moved it (`like_counts.epoch_delta`, `likes_sink::epoch_deltas`).
//! Once every change from before the start is in the store (a ticket past the start plus the
//! clock margin, and no spool since just before the start), the count is
//! `stored count − stored epoch delta + the epoch's sum`: the store's count holds exactly the
//! epoch's changes that landed, and the subtraction takes out how far they moved it.
//!
//! # What ends an epoch early
//! Anything the sum cannot account for: a count move that is not an apply (a confirm after a
//! revert, a revert, a learned state), a forget, a republished fenced state (the store may
//! lack it), and a change published after a state still pending from before the start plus the
//! margin (that older event could reach the store after this one, and the sink would count this
//! one's move from the wrong state). The next refused fill starts a newer epoch (`:h`, the
//! highest started, keeps them increasing).

/// Count helpers every script that touches a count starts with. `move_count` moves a cached
/// count by `delta` (a miss stays a miss: only a fill creates it) and records in `t_key` when it
/// last changed (`changed_ms` 0: it did not); it returns the count after, or false when not
/// cached.
pub(super) const COUNT_FNS: &str = r#"
local function mark_changed(t_key, changed_ms, ttl)
  local t = redis.call('GET', t_key)
  if not t or tonumber(t) < tonumber(changed_ms) then
    redis.call('SET', t_key, changed_ms, 'EX', ttl)
  end
end
local function move_count(n_key, t_key, delta, changed_ms, ttl)
  if changed_ms ~= '0' then mark_changed(t_key, changed_ms, ttl) end
  if redis.call('EXISTS', n_key) == 0 then return false end
  redis.call('EXPIRE', n_key, ttl)
  if delta == '0' then return tonumber(redis.call('GET', n_key)) end
  return redis.call('INCRBY', n_key, delta)
end
local function end_epoch(e_key, a_key)
  redis.call('DEL', e_key, a_key)
end
-- A move that is not an apply's (a confirm, a revert, a learned state).
local function settle_count(n_key, t_key, e_key, a_key, delta, changed_ms, ttl)
  local n = move_count(n_key, t_key, delta, changed_ms, ttl)
  if not n and delta ~= '0' then end_epoch(e_key, a_key) end
  return n
end
-- An apply's move. `after` is what its event is published after: '' a settled state, a
-- version a pending one (the state it replaced, or itself when repeated), 'fence' a fenced
-- state published again. Returns the count (false when missing) and the epoch to tag the
-- event with ('0': none).
local function apply_count(n_key, t_key, e_key, a_key, delta, changed_ms, ttl, after, margin)
  local n = move_count(n_key, t_key, delta, changed_ms, ttl)
  if n or (delta == '0' and after == '') then return n, '0' end
  local e = redis.call('GET', e_key)
  if not e then return n, '0' end
  if after == 'fence' or
     (after ~= '' and math.floor(tonumber(after) / 65536) < tonumber(e) + tonumber(margin)) then
    end_epoch(e_key, a_key)
    return n, '0'
  end
  if delta ~= '0' then redis.call('INCRBY', a_key, delta) end
  return n, e
end
"#;

/// A change the count cannot follow (a learned state whose predecessor is unknown): the cached
/// count may lack it, or have it already (filled from a store that had it), so it is dropped,
/// and the change is recorded so that only a store read taken after it fills the count again.
pub(super) const FORGET_COUNT_FN: &str = r#"
local function forget_count(n_key, t_key, e_key, a_key, changed_ms, ttl)
  mark_changed(t_key, changed_ms, ttl)
  redis.call('DEL', n_key)
  end_epoch(e_key, a_key)
end
"#;

/// KEYS: count, last change, epoch, epoch sum. ARGV: delta, change ms (0: none), ttl s. For the
/// Cluster's confirm, revert and learn moves.
pub(super) const SETTLE_COUNT: &str =
    "return settle_count(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3])";

/// KEYS: count, last change, epoch, epoch sum. ARGV: delta, change ms (0: none), ttl s, after,
/// margin ms. For the Cluster's apply. Returns `{count or nil, epoch}`.
pub(super) const APPLY_COUNT: &str = r#"
local n, epoch = apply_count(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3],
  ARGV[4], ARGV[5])
return {n, epoch}
"#;

/// KEYS: count, last change, epoch, epoch sum. ARGV: change ms, ttl s.
pub(super) const FORGET_COUNT: &str =
    "return forget_count(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])";

/// KEYS: count, last change, epoch, epoch sum, highest epoch, then (one Redis) the spool's last
/// time. ARGV: stored count, ticket ms, ttl s, stored epoch, stored epoch delta, margin ms,
/// spool's last time (a Cluster, read by the caller), epoch ttl s. Returns the count now cached,
/// or nil when the read may lack changes (an epoch is then under way: see the module docs). An
/// epoch that a spool has overtaken is started again, so one begun during a Pulsar outage does
/// not wait out its TTL.
pub(super) const FILL_COUNT: &str = r#"
local n = redis.call('GET', KEYS[1])
if n then return tonumber(n) end
local ticket = tonumber(ARGV[2])
local t = redis.call('GET', KEYS[2])
if not t or tonumber(t) <= ticket then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
  redis.call('DEL', KEYS[3], KEYS[4])
  return tonumber(ARGV[1])
end
local margin = tonumber(ARGV[6])
local e = redis.call('GET', KEYS[3])
if e then
  local start = tonumber(e)
  if ticket < start + margin then return false end
  local spooled = tonumber(ARGV[7])
  if KEYS[6] then spooled = tonumber(redis.call('GET', KEYS[6]) or '0') end
  if spooled < start - margin then
    local landed = 0
    if ARGV[4] == e then landed = tonumber(ARGV[5]) end
    local v = tonumber(ARGV[1]) - landed + tonumber(redis.call('GET', KEYS[4]) or '0')
    redis.call('SET', KEYS[1], string.format('%d', v), 'EX', ARGV[3])
    end_epoch(KEYS[3], KEYS[4])
    return v
  end
  -- A spool held events since just before the start: this epoch can never complete. A new
  -- one starts now, to complete once the spools are past it.
end
if ARGV[8] == '0' then return false end
local now = redis.call('TIME')
local start = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
start = math.max(start, tonumber(redis.call('GET', KEYS[5]) or '0') + 1, tonumber(ARGV[4]) + 1)
start = string.format('%d', start)
redis.call('SET', KEYS[3], start, 'EX', ARGV[8])
redis.call('SET', KEYS[4], '0', 'EX', ARGV[8])
redis.call('SET', KEYS[5], start, 'EX', ARGV[3])
return false
"#;
