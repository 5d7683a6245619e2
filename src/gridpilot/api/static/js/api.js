// The API: the key (URL fragment #key=, the form or sessionStorage; never sent in a URL),
// fetch with the X-API-Key header, and the WebSocket opened with a single-use token.
const STORE = "gridpilot.key";
export class KeyRefused extends Error {}

export function takeKey() {
  // #key=... is never sent to the server; a key in the query (old links) leaves the address bar
  const frag = new URLSearchParams(location.hash.slice(1)).get("key");
  const query = new URLSearchParams(location.search).get("key");
  const k = frag || query;
  if (k) {
    sessionStorage.setItem(STORE, k);
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem(STORE) || "";
}

export const setKey = (k) => sessionStorage.setItem(STORE, k.trim());
export const forgetKey = () => sessionStorage.removeItem(STORE);
const key = () => sessionStorage.getItem(STORE) || "";

async function detail(r) {
  try { const j = await r.json(); return typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail); }
  catch { return r.statusText; }
}

// GET or POST ``path``; returns {ok, status, body}; a 401 throws KeyRefused with the server's reason
export async function api(path, body = undefined) {
  const opts = { headers: { "X-API-Key": key() } };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  if (r.status === 401) throw new KeyRefused(await detail(r));
  if (!r.ok) return { ok: false, status: r.status, body: null, detail: await detail(r), json: null };
  const j = await r.json();
  return { ok: true, status: r.status, body: j, json: j };
}

// POST returning the JSON body for 2xx and 409 (the guard's refusal carries its reasons)
export async function command(path, body) {
  const r = await fetch(path, {
    method: "POST",
    headers: { "X-API-Key": key(), "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (r.status === 401) throw new KeyRefused(await detail(r));
  let j = null;
  try { j = await r.json(); } catch { j = null; }
  return { ok: r.ok, status: r.status, body: j };
}

// the live stream: onMessage per step; onStatus(text); onRefused(reason) stops reconnecting
export function stream({ onMessage, onStatus, onRefused }) {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  let stopped = false;
  const retry = (why) => { if (!stopped) { onStatus(why); setTimeout(connect, 1500); } };
  async function connect() {
    let tok;
    try {
      const r = await api("/api/ws-token", {});
      if (!r.ok) return retry(`reconnecting… (token: ${r.status})`);
      tok = r.body.token;
    } catch (e) {
      if (e instanceof KeyRefused) { stopped = true; return onRefused(e.message); }
      return retry("server unreachable, reconnecting…");
    }
    const ws = new WebSocket(`${proto}://${location.host}/api/ws?token=${encodeURIComponent(tok)}`);
    // "live" once values came over the stream, not when the socket merely opened
    let fresh = true;
    ws.onopen = () => onStatus("connected, waiting for the first values");
    ws.onmessage = (m) => {
      onMessage(JSON.parse(m.data));
      if (fresh) { fresh = false; onStatus("live"); }
    };
    ws.onclose = (ev) => {
      if (ev.code === 4401) { stopped = true; onRefused("the live stream refused the key"); return; }
      retry("reconnecting…");
    };
  }
  connect();
  return { stop: () => { stopped = true; } };
}
