// The API as the console calls it: the key lives only in this tab's sessionStorage and goes
// out as an Authorization header on each fetch (never a cookie, so no other site can make the
// browser send it).

const KEY = "billumy.key";

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

// fetch() with the key; a JSON body when `json` is given. Errors become ApiError with the
// server's {"error": "..."} message; a 401 (the key was revoked) signs out, unless this is the
// sign-in's own check.
export async function call(path, { method = "GET", json, body, signal, headers = {}, signingIn = false } = {}) {
  const all = { ...headers };
  const key = getKey();
  if (key) all.Authorization = `Bearer ${key}`;
  if (json !== undefined) {
    all["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  const response = await fetch(path, { method, headers: all, body, signal, credentials: "omit" });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const data = await response.json();
      if (data && typeof data.error === "string") message = data.error;
      else if (data && data.error && data.error.message) message = data.error.message;
    } catch {
      // not JSON: keep the status line
    }
    if (response.status === 401 && !signingIn) onUnauthorized(message);
    throw new ApiError(response.status, message);
  }
  return response;
}

export async function getJSON(path, options) {
  const response = await call(path, options);
  return response.status === 204 ? null : response.json();
}

// Each object of an NDJSON stream, as it arrives.
export async function* ndjson(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    let end;
    while ((end = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, end).trim();
      pending = pending.slice(end + 1);
      if (line) yield JSON.parse(line);
    }
  }
  pending += decoder.decode();
  if (pending.trim()) yield JSON.parse(pending);
}
