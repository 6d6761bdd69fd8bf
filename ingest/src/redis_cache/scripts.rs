//! The Lua scripts of [`super::RedisStateCache`], one per action, built from the functions below.
//! On one Redis an action's state and its count move in one script (`*_COUNTED`), one round trip.
//! A Redis Cluster runs a script only if its keys share a slot: there the state script runs on
//! the user's slot and the count moves in a second one on the content's (`cluster` in the config).
//!
//! # Why Lua, and why versions are strings
//! Each script reads an entry, decides and writes it in one step on the server: two ingest
//! instances acting on one (user, content) at once cannot both see "not liked" and both publish a
//! transition. Versions are hybrid logical clocks near 2^57, past the 2^53 integers a Lua number
//! holds exactly, so the scripts never turn a version into a number: versions are decimal strings
//! without leading zeros, compared by length and then bytes, and incremented digit by digit. Only
//! the wall-clock part (`version / 2^16`, in milliseconds) is ever computed, where a rounding of a
//! millisecond does not matter.
//!
//! # The entry
//! Field `<content_id>` of `likes:{u:<user_id>}` holds `<version>:<liked>` when settled (the
//! current state is the last durable one) or `<version>:<liked>/<durable version>:<durable liked>`
//! while the current state waits for its event to become durable (DESIGN section 7). Version `0`
//! is "known: no row". Field `_f` is the fill marker: `1` when the user's fill held every row they
//! have (absent contents are "no row"), `0` when it did not. Field `_m` is the newest wall-clock
//! millisecond of a state forgotten to make room: a fill read before that may lack it.

use super::count_scripts::{
    APPLY_COUNT, COUNT_FNS, FILL_COUNT, FORGET_COUNT, FORGET_COUNT_FN, SETTLE_COUNT,
};
use redis::Script;
use std::sync::LazyLock;

/// Helpers every state script starts with.
const PRELUDE: &str = r#"
local function lt(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function inc(s)
  local d = {string.byte(s, 1, -1)}
  for i = #d, 1, -1 do
    if d[i] == 57 then d[i] = 48 else d[i] = d[i] + 1; return string.char(unpack(d)) end
  end
  return '1' .. string.char(unpack(d))
end
local function parse(f)
  local cv, cl, dv, dl = string.match(f, '^(%d+):([01])/(%d+):([01])$')
  if cv then return cv, cl, dv, dl end
  cv, cl = string.match(f, '^(%d+):([01])$')
  return cv, cl, cv, cl
end
local function encode(cv, cl, dv, dl)
  if cv == dv then return cv .. ':' .. cl end
  return cv .. ':' .. cl .. '/' .. dv .. ':' .. dl
end
-- Makes room for one more field under `cap` by forgetting settled states whose change is older
-- than `before` (wall-clock ms: the store holds them). The user stops being complete.
local function make_room(key, cap, before)
  if redis.call('HLEN', key) < cap then return true end
  redis.call('HSET', key, '_f', '0')
  local all = redis.call('HGETALL', key)
  local dropped, newest = 0, tonumber(redis.call('HGET', key, '_m') or '0')
  for i = 1, #all, 2 do
    local field = all[i]
    if field ~= '_f' and field ~= '_m' then
      local cv, _, dv = parse(all[i + 1])
      local wall = math.floor(tonumber(cv) / 65536)
      if cv == dv and wall < before then
        redis.call('HDEL', key, field)
        if wall > newest then newest = wall end
        dropped = dropped + 1
        if dropped >= 64 then break end
      end
    end
  end
  if dropped == 0 then return false end
  redis.call('HSET', key, '_m', string.format('%d', newest))
  return true
end
"#;

/// Applies `want` (0/1) to `content`'s entry in hash `key`, at no less than `version`. Returns
/// nil when cold, else `{changed, version, pending, after}`: `after` is what the event to publish
/// follows (`apply_count` in `count_scripts.rs`). A settled state written before `fence` (wall
/// ms) may have missed events published while the cache was away, newer than it: a repeat of it
/// is not "no change" but a new pending state of the same `liked`, to publish.
const APPLY_FN: &str = r#"
local function apply_state(key, content, want, version, ttl, cap, before, fence)
  local f = redis.call('HGET', key, content)
  local cv, cl, dv, dl
  if f then
    cv, cl, dv, dl = parse(f)
  elseif redis.call('HGET', key, '_f') == '1' then
    cv, cl, dv, dl = '0', '0', '0', '0'
  else
    return false
  end
  redis.call('EXPIRE', key, ttl)
  if cl == want then
    if cv == dv and math.floor(tonumber(cv) / 65536) < fence then
      local v = inc(cv)
      if lt(v, version) then v = version end
      redis.call('HSET', key, content, encode(v, want, dv, dl))
      return {0, v, 1, 'fence'}
    end
    if cv ~= dv then return {0, cv, 1, cv} end
    return {0, cv, 0, ''}
  end
  if not f and not make_room(key, tonumber(cap), tonumber(before)) then
    return redis.error_reply('LIKESFULL every cached state of this user waits for the store')
  end
  local after = (cv ~= dv) and cv or ''
  local v = inc(cv)
  if lt(v, version) then v = version end
  redis.call('HSET', key, content, encode(v, want, dv, dl))
  return {1, v, 0, after}
end
"#;

/// The state (`liked` at `v`) is durable: it becomes the durable one if newer, and the current
/// one too if a revert took it away. Returns 1 when that moved the current state's `liked` (the
/// count must follow).
const CONFIRM_FN: &str = r#"
local function settle_state(key, content, liked, v)
  local f = redis.call('HGET', key, content)
  if not f then return 0 end
  local cv, cl, dv, dl = parse(f)
  if lt(dv, v) then dv, dl = v, liked end
  local moved = 0
  if lt(cv, v) then
    if cl ~= liked then moved = 1 end
    cv, cl = v, liked
  end
  redis.call('HSET', key, content, encode(cv, cl, dv, dl))
  return moved
end
"#;

/// The publish of (`liked` at `v`) failed: a change goes back to the last durable state if the
/// entry still holds it. Returns 1 when `liked` moved back.
const REVERT_FN: &str = r#"
local function settle_state(key, content, liked, v)
  local f = redis.call('HGET', key, content)
  if not f then return 0 end
  local cv, cl, dv, dl = parse(f)
  if cv ~= v or dv == v then return 0 end
  redis.call('HSET', key, content, encode(dv, dl, dv, dl))
  if dl ~= liked then return 1 end
  return 0
end
"#;

/// A durable state the cache missed (published while it was unavailable) becomes the entry's if
/// newer, as a confirm does (it runs with [`CONFIRM_FN`]). A missing field of a complete user was
/// "no row": it is added (the count follows if liked). Otherwise the state is unknown here, and
/// a fill read before the change may lack it: `_m` refuses such fills, as after a forget.
/// Returns 1 when the current `liked` moved, -1 when the state it replaced is unknown (the
/// count cannot follow: see [`FORGET_COUNT_FN`]).
const LEARN_FN: &str = r#"
local function learn_state(key, content, liked, v, ttl)
  if redis.call('HEXISTS', key, content) == 1 then
    return settle_state(key, content, liked, v)
  end
  if redis.call('HGET', key, '_f') == '1' then
    redis.call('HSET', key, content, v .. ':' .. liked)
    if liked == '1' then return 1 end
    return 0
  end
  local wall = math.floor(tonumber(v) / 65536)
  if wall > tonumber(redis.call('HGET', key, '_m') or '0') then
    redis.call('HSET', key, '_m', string.format('%d', wall))
  end
  redis.call('EXPIRE', key, ttl)
  return -1
end
"#;

/// KEYS: user hash. ARGV: content, liked (0/1), requested version, ttl s, cap, forget-before ms,
/// fence ms (as this instance last read it: a Cluster cannot read the fence key here).
const APPLY: &str = "return apply_state(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], \
                     ARGV[6], tonumber(ARGV[7]))";

/// [`APPLY`], and the count follows in the same step. KEYS: user hash, count, last change,
/// fence, epoch, epoch sum. ARGV: the first six of [`APPLY`], then change ms, count ttl s, epoch
/// margin ms. Returns `{changed, version, pending, count, epoch}` (count nil when not cached,
/// epoch `0` when none tags the event).
const APPLY_COUNTED: &str = r#"
local fence = tonumber(redis.call('GET', KEYS[4]) or '0')
local r = apply_state(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], fence)
if not r or r.err then return r end
local delta, changed_ms = '0', '0'
if r[1] == 1 then
  delta = (ARGV[2] == '1') and '1' or '-1'
  changed_ms = ARGV[7]
end
local n, epoch = apply_count(KEYS[2], KEYS[3], KEYS[5], KEYS[6], delta, changed_ms, ARGV[8],
  r[4], ARGV[9])
r[4] = n
r[5] = epoch
return r
"#;

/// KEYS: user hash. ARGV: content, liked, version. For the confirm and the revert.
const SETTLE: &str = "return settle_state(KEYS[1], ARGV[1], ARGV[2], ARGV[3])";

/// KEYS: user hash. ARGV: content, liked, version, ttl s.
const LEARN: &str = "return learn_state(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])";

/// [`LEARN`], and the count follows by delta when it reports a move, or is forgotten when it
/// cannot follow. KEYS: user hash, count, last change, epoch, epoch sum. ARGV: those of
/// [`LEARN`], then delta, change ms, count ttl s.
const LEARN_COUNTED: &str = r#"
local moved = learn_state(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if moved == 1 then
  settle_count(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[5], ARGV[6], ARGV[7])
elseif moved == -1 then
  forget_count(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[6], ARGV[7])
end
return moved
"#;

/// [`SETTLE`], and the count follows by delta when it reports a move. KEYS: user hash, count,
/// last change, epoch, epoch sum. ARGV: those of [`SETTLE`], then delta, change ms, count ttl s.
const SETTLE_COUNTED: &str = r#"
local moved = settle_state(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if moved == 1 then
  settle_count(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[4], ARGV[5], ARGV[6])
end
return moved
"#;

/// KEYS: user hash. ARGV: ticket ms, complete (1/0, or - for single states), ttl s, cap,
/// forget-before ms, then content/value pairs. Adds missing fields only (never overwrites a
/// cached state). Returns -1 when a state newer than the ticket was forgotten (read again),
/// else 1 when every field fit, 0 when not all did.
const SEED: &str = r#"
local key = KEYS[1]
local forgot = redis.call('HGET', key, '_m')
if forgot and tonumber(forgot) > tonumber(ARGV[1]) then return -1 end
local single = ARGV[2] == '-'
local cap, before = tonumber(ARGV[4]), tonumber(ARGV[5])
local all_in = 1
for i = 6, #ARGV, 2 do
  if redis.call('HEXISTS', key, ARGV[i]) == 0 then
    if redis.call('HLEN', key) >= cap then
      if not single then all_in = 0; break end
      if not make_room(key, cap, before) then
        return redis.error_reply('LIKESFULL every cached state of this user waits for the store')
      end
    end
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  end
end
if not single and redis.call('HGET', key, '_f') ~= '1' then
  if ARGV[2] == '1' and all_in == 1 then
    redis.call('HSET', key, '_f', '1')
  else
    redis.call('HSET', key, '_f', '0')
  end
end
redis.call('EXPIRE', key, ARGV[3])
return all_in
"#;

/// KEYS: fence. ARGV: ms. Raises the fence, never lowers it; returns the fence now.
const FENCE: &str = r#"
local f = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > f then
  f = tonumber(ARGV[1])
  redis.call('SET', KEYS[1], ARGV[1])
end
return f
"#;

/// Scripts that take something new (an action, a fill): with a shebang and no flags, a Redis at
/// `maxmemory` refuses the whole script with OOM before it runs. Without one Redis checks memory
/// only at the script's first write, and a first write that does not grow memory (`EXPIRE`)
/// lets every later one through: an action half applied.
const TAKES: &str = "#!lua\n";
/// Scripts that settle what was already taken (confirm, revert, the count move of a change):
/// they must run on a full Redis too, or a durable like stays pending and its count unmoved.
const SETTLES: &str = "#!lua flags=allow-oom\n";

fn script(shebang: &str, parts: &[&str]) -> Script {
    Script::new(&format!("{shebang}{}", parts.concat()))
}

pub(super) static APPLY_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(TAKES, &[PRELUDE, APPLY_FN, APPLY]));
pub(super) static APPLY_COUNTED_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(TAKES, &[PRELUDE, APPLY_FN, COUNT_FNS, APPLY_COUNTED]));
pub(super) static SEED_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(TAKES, &[PRELUDE, SEED]));
pub(super) static FILL_COUNT_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(TAKES, &[COUNT_FNS, FILL_COUNT]));
pub(super) static CONFIRM_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(SETTLES, &[PRELUDE, CONFIRM_FN, SETTLE]));
pub(super) static CONFIRM_COUNTED_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(SETTLES, &[PRELUDE, CONFIRM_FN, COUNT_FNS, SETTLE_COUNTED]));
pub(super) static REVERT_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(SETTLES, &[PRELUDE, REVERT_FN, SETTLE]));
pub(super) static REVERT_COUNTED_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(SETTLES, &[PRELUDE, REVERT_FN, COUNT_FNS, SETTLE_COUNTED]));
pub(super) static SETTLE_COUNT_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(SETTLES, &[COUNT_FNS, SETTLE_COUNT]));
pub(super) static APPLY_COUNT_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(SETTLES, &[COUNT_FNS, APPLY_COUNT]));
pub(super) static FORGET_COUNT_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(SETTLES, &[COUNT_FNS, FORGET_COUNT_FN, FORGET_COUNT]));
pub(super) static LEARN_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(SETTLES, &[PRELUDE, CONFIRM_FN, LEARN_FN, LEARN]));
pub(super) static LEARN_COUNTED_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    script(
        SETTLES,
        &[
            PRELUDE,
            CONFIRM_FN,
            LEARN_FN,
            COUNT_FNS,
            FORGET_COUNT_FN,
            LEARN_COUNTED,
        ],
    )
});
pub(super) static FENCE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(SETTLES, &[FENCE]));
