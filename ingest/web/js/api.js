// The HTTP API of likes (README "Using the API"): one fetch wrapper that sends the caller's
// token, reads the JSON error shape, and honours Retry-After for every later call.
//
// Content ids are u64s (DESIGN), past what a JS number holds exactly (2^53): the page keeps
// every id as its decimal string. Answers are read as text and each `"content_id": <digits>`
// is quoted before JSON.parse; ids go out as those digits, spliced into URLs and JSON text.

/** An answer other than 2xx, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(status, code, message, retryAfterSecs) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterSecs = retryAfterSecs;
  }
}

let token = null;
// After a 429 or 503 nothing is sent before this time (ms since the epoch).
let quietUntil = 0;

export function setToken(value) {
  token = value || null;
}

export function hasToken() {
  return token !== null;
}

/** Seconds until requests may be sent again, 0 when they may. */
export function secondsToWait() {
  return Math.max(0, Math.ceil((quietUntil - Date.now()) / 1000));
}

const ID = /^[1-9][0-9]*$/;
const ID_FIELD = /("content_id"\s*:\s*)([0-9]+)/g;

/** The decimal text of a content id (a string, or a number below 2^53); throws for anything else. */
export function idText(id) {
  const text = String(id);
  if (!ID.test(text)) throw new TypeError(`not a content id: ${text}`);
  return text;
}

/**
 * JSON text parsed with every `content_id` as a string. Only a key can match: inside a JSON
 * string a quote is escaped, so `"content_id"` followed by `:` is never part of a value.
 */
export function parseJson(text) {
  return JSON.parse(text.replace(ID_FIELD, '$1"$2"'));
}

function retryAfterSecs(header) {
  if (!header) return null;
  const secs = Number(header);
  if (Number.isFinite(secs) && secs >= 0) return Math.ceil(secs);
  const when = Date.parse(header);
  return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - Date.now()) / 1000));
}

/** `body`, when given, is JSON text. */
async function call(method, path, body) {
  const wait = secondsToWait();
  if (wait > 0) throw new ApiError(429, 'waiting', 'waiting for the service', wait);
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body,
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', 'the service could not be reached', null);
  }
  let data = null;
  try {
    data = parseJson(await response.text());
  } catch {
    data = null;
  }
  if (!response.ok) {
    const after = retryAfterSecs(response.headers.get('retry-after'));
    if (response.status === 429 || response.status === 503) {
      quietUntil = Math.max(quietUntil, Date.now() + (after ?? 1) * 1000);
    }
    const error = data && data.error ? data.error : {};
    throw new ApiError(response.status, error.code || `http_${response.status}`,
      error.message || response.statusText, after);
  }
  return data;
}

/** Counts (and, for a signed-in caller, states) of up to 100 contents. */
export function batchGet(ids) {
  return call('POST', '/v1/contents:batchGet', `{"content_ids":[${ids.map(idText).join(',')}]}`);
}

/** Likes (liked = true) or unlikes a content: `{content_id, liked, count, changed}`. */
export function setLiked(id, liked) {
  return call(liked ? 'PUT' : 'DELETE', `/v1/contents/${idText(id)}/like`);
}

export function trending(limit) {
  return call('GET', `/v1/trending?limit=${limit}`);
}

export function myLikes(cursor, limit) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (cursor) query.set('cursor', cursor);
  return call('GET', `/v1/me/likes?${query}`);
}

export function devToken(userId) {
  return call('POST', '/v1/dev/token', JSON.stringify({ user_id: userId }));
}

/**
 * Whether this server mints demo tokens, without minting one: a body without `user_id` is a
 * 400 where the route exists. Anything else (404 or 403 where it does not, a 429 or 5xx, no
 * answer) means no picker. A plain fetch, not `call`: its 429 or 503 must not make the other
 * calls wait.
 */
export async function devTokensOffered() {
  try {
    const response = await fetch('/v1/dev/token', {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/json' },
      body: '{}',
      cache: 'no-store',
    });
    return response.status === 400;
  } catch {
    return false;
  }
}
