// The HTTP API of likes (README "Using the API"): one fetch wrapper that sends the caller's
// token, reads the JSON error shape, and honours Retry-After for every later call.

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

function retryAfterSecs(header) {
  if (!header) return null;
  const secs = Number(header);
  if (Number.isFinite(secs) && secs >= 0) return Math.ceil(secs);
  const when = Date.parse(header);
  return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - Date.now()) / 1000));
}

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
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', 'the service could not be reached', null);
  }
  const data = await response.json().catch(() => null);
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
  return call('POST', '/v1/contents:batchGet', { content_ids: ids });
}

/** Likes (liked = true) or unlikes a content: `{content_id, liked, count, changed}`. */
export function setLiked(id, liked) {
  return call(liked ? 'PUT' : 'DELETE', `/v1/contents/${id}/like`);
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
  return call('POST', '/v1/dev/token', { user_id: userId });
}

/**
 * Whether this server mints demo tokens, without minting one: a body without `user_id` is a
 * 400 where the route exists and a 404 (or 403) where it does not.
 */
export async function devTokensOffered() {
  try {
    await call('POST', '/v1/dev/token', {});
    return true;
  } catch (error) {
    return !(error.status === 404 || error.status === 403);
  }
}
