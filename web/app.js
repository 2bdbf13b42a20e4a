// app.js — the OMS web console (DESIGN §3.7): one WebSocket to omsd's plain
// JSON dialect (/events), or Server-Sent Events (/events/stream, which the
// browser's EventSource resumes by itself with Last-Event-ID), subscriptions,
// toasts, an event list per kind, ping (WebSocket only), reconnect with
// backoff and resume (§3.5), and an operator panel
// (stats chart, broadcast) for staff and admin. Plain DOM, no framework.
// Everything that comes from the server is put on the page with
// textContent, never as HTML.

import { LineChart } from './chart.js';

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const MAX_ROWS = 500; // per tab; older rows are dropped (counts keep going)
const MAX_TOASTS = () => (window.matchMedia('(max-width: 520px)').matches ? 2 : 4); // visible at once
const TOAST_MS = 6000;
const STATS_EVERY_MS = 2000;
const MAX_ACTIVITY = 60;
const SEEN_IDS = 4000; // recent event positions remembered to drop duplicates

// server event name → tab kind, and the stream each kind's positions track
const KIND_OF = {
  order_update: 'order',
  inventory_update: 'inventory',
  user_notification: 'user',
  system_notification: 'system',
};
const GROUP_OF_KIND = { order: 'order', inventory: 'inventory', user: 'notifications', system: 'notifications' };
const KIND_LABEL = { order: 'Order update', inventory: 'Inventory alert', user: 'Notification', system: 'System' };
const ANSWERS = new Set(['subscription_confirmed', 'unsubscribed', 'pong', 'error', 'token_refreshed', 'resumed']);

const $ = (id) => document.getElementById(id);

const ui = {
  status: $('status'),
  statusText: $('status-text'),
  statusWho: $('status-who'),
  samples: $('samples'),
  sampleButtons: $('sample-buttons'),
  token: $('token'),
  tokenInfo: $('token-info'),
  transport: $('transport'),
  connect: $('connect'),
  disconnect: $('disconnect'),
  detail: $('conn-detail'),
  ping: $('ping'),
  rtt: $('rtt'),
  activity: $('activity'),
  ops: $('ops'),
  statsNote: $('stats-note'),
  broadcast: $('broadcast'),
  bcResult: $('bc-result'),
  toasts: $('toasts'),
  toastsOn: $('toasts-on'),
  health: $('health'),
  subs: {
    order: { input: $('sub-order'), state: $('sub-order-state'), filter: $('sub-order-filter') },
    inventory: { input: $('sub-inventory'), state: $('sub-inventory-state'), filter: $('sub-inventory-filter') },
  },
};

const st = {
  ws: null,
  es: null, // the EventSource, on Server-Sent Events
  lastId: '', // the last SSE id: where a reopened stream resumes
  want: false, // the user wants a connection (reconnect while true)
  token: '',
  attempt: 0,
  retryTimer: 0,
  retryAt: 0,
  connectedAt: 0,
  expiredNotice: false, // the server said the token expired: do not reconnect
  countdown: 0,
  session: null, // {userId, role} of the current or last connection
  resumable: false, // a session existed since the user pressed Connect
  pending: [], // answers awaited, in order: {what, type?, sentAt?}
  positions: new Map(), // "topic:partition" → {offset: BigInt, group}
  held: null, // positions of a reconnect, merged once `resumed` arrives
  seen: new Set(),
  seenOrder: [],
  counts: { order: 0, inventory: 0, user: 0, system: 0 },
  statsTimer: 0,
  toastsShown: 0,
};

// ---- small helpers -----------------------------------------------------------

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function clock(d = new Date()) {
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function eventTime(iso) {
  const d = iso ? new Date(iso) : null;
  return d && !Number.isNaN(d.getTime()) ? clock(d) : clock();
}

function duration(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return `${Math.floor(s / 3600)} h${m ? ` ${m} min` : ''}`;
  }
  return `${Math.floor(s / 86400)} d`;
}

function money(v) {
  return typeof v === 'number' ? v.toFixed(2) : v;
}

// The JWT payload, decoded without checking anything (the server checks):
// only to show who the token is for and when it expires.
function decodeToken(t) {
  const parts = t.split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const json = new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
    const p = JSON.parse(json);
    return p && typeof p === 'object' ? p : null;
  } catch {
    return null;
  }
}

function tokenUser(p) {
  const id = p.userId ?? p.sub;
  return id === undefined || id === null ? null : String(id);
}

const isStaff = (role) => role === 'staff' || role === 'admin';

// ---- status and activity -----------------------------------------------------

const STATUS_TEXT = {
  disconnected: 'Disconnected',
  connecting: 'Connecting…',
  connected: 'Connected',
  error: 'Error',
};

// state: disconnected | connecting | connected | error; detail: a sentence
// under the buttons (an error's reason, a reconnect countdown)
function setStatus(state, label, detail = '', who = '') {
  ui.status.dataset.state = state;
  ui.statusText.textContent = label || STATUS_TEXT[state];
  ui.statusWho.textContent = who;
  ui.detail.textContent = detail;
  ui.detail.dataset.state = state;
  const live = state === 'connected';
  ui.ping.disabled = !live || !!st.es; // one-way on Server-Sent Events
  ui.disconnect.disabled = !st.want && state !== 'connected';
  updateConnectButton();
}

function updateConnectButton() {
  const state = ui.status.dataset.state;
  const live = state === 'connected';
  const t = ui.token.value.trim();
  if (live && st.ws && t && t !== st.token) {
    ui.connect.textContent = 'Use new token';
    ui.connect.disabled = false;
  } else if (state === 'connecting' && st.retryTimer) {
    ui.connect.textContent = 'Retry now';
    ui.connect.disabled = false;
  } else {
    ui.connect.textContent = 'Connect';
    ui.connect.disabled = live || state === 'connecting';
  }
}

function activity(text, level = 'info') {
  const li = el('li', `act act-${level}`);
  li.append(el('time', 'act-time', clock()), el('span', 'act-text', text));
  ui.activity.prepend(li);
  while (ui.activity.children.length > MAX_ACTIVITY) ui.activity.lastChild.remove();
}

// ---- token field and sample tokens --------------------------------------------

function showTokenInfo() {
  const t = ui.token.value.trim();
  ui.tokenInfo.textContent = '';
  ui.tokenInfo.dataset.state = '';
  if (!t) {
    applyRole(st.session ? st.session.role : null);
    updateConnectButton();
    return;
  }
  const p = decodeToken(t);
  if (!p) {
    ui.tokenInfo.textContent = 'This does not look like a JWT (header.payload.signature in base64url).';
    ui.tokenInfo.dataset.state = 'warn';
  } else {
    const bits = [];
    if (p.role) bits.push(String(p.role));
    const u = tokenUser(p);
    if (u) bits.push(`user ${u}`);
    if (typeof p.exp === 'number') {
      const left = p.exp - Date.now() / 1000;
      bits.push(left > 0 ? `expires in ${duration(left)}` : `expired ${duration(-left)} ago`);
      if (left <= 0) ui.tokenInfo.dataset.state = 'warn';
    } else {
      bits.push('no exp claim');
      ui.tokenInfo.dataset.state = 'warn';
    }
    ui.tokenInfo.textContent = bits.join(' · ');
    if (!st.session || ui.status.dataset.state !== 'connected') applyRole(p.role);
  }
  try {
    sessionStorage.setItem('oms.token', t);
  } catch {
    /* storage may be off */
  }
  updateConnectButton();
}

async function loadSampleTokens() {
  try {
    const r = await fetch('/dev/tokens', { cache: 'no-store' });
    if (!r.ok) return; // not in dev mode
    const { tokens } = await r.json();
    if (!Array.isArray(tokens) || tokens.length === 0) return;
    ui.sampleButtons.replaceChildren();
    for (const t of tokens) {
      const label = String(t.role).charAt(0).toUpperCase() + String(t.role).slice(1);
      const b = el('button', 'chip');
      b.type = 'button';
      b.dataset.role = t.role;
      b.title = `${t.role}, user ${t.userId}`;
      b.append(el('span', 'chip-role', label), el('span', 'chip-user', `user ${t.userId}`));
      b.addEventListener('click', () => {
        ui.token.value = t.token;
        showTokenInfo();
        for (const o of ui.sampleButtons.children) o.setAttribute('aria-pressed', String(o === b));
        ui.connect.focus();
      });
      ui.sampleButtons.append(b);
    }
    ui.samples.hidden = false;
  } catch {
    /* omsd down: the sample tokens just do not show */
  }
}

async function checkHealth() {
  try {
    const r = await fetch('/websocket/health', { cache: 'no-store' });
    const h = await r.json();
    const deps = h.dependencies || {};
    const k = deps.kafka ? `kafka ${deps.kafka.status}` : '';
    ui.health.textContent = `omsd ${h.status}${h.uptimeSeconds !== undefined ? ` · up ${duration(h.uptimeSeconds)}` : ''}${k ? ` · ${k}` : ''}`;
    ui.health.dataset.state = r.ok ? 'ok' : 'warn';
  } catch {
    ui.health.textContent = 'omsd unreachable';
    ui.health.dataset.state = 'error';
  }
}

// ---- role-dependent parts -------------------------------------------------------

function applyRole(role) {
  const inv = ui.subs.inventory;
  const customer = role === 'customer';
  inv.input.disabled = customer || role === 'service';
  inv.filter.disabled = inv.input.disabled;
  if (customer) {
    inv.input.checked = false;
    inv.state.textContent = 'staff and admin only';
    inv.state.dataset.state = 'muted';
  } else if (inv.state.dataset.state === 'muted') {
    inv.state.textContent = '';
    inv.state.dataset.state = '';
  }
  ui.ops.hidden = !isStaff(role);
  ui.broadcast.hidden = role !== 'admin';
  if (isStaff(role) && st.want) startStats();
  else stopStats();
}

// ---- the connection ----------------------------------------------------------------

function wsUrl(token) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/events?token=${encodeURIComponent(token)}`;
}

function send(event, data, pending) {
  const ws = st.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(data === undefined ? { event } : { event, data }));
  if (pending) st.pending.push(pending);
  return true;
}

function userConnect() {
  const t = ui.token.value.trim();
  const state = ui.status.dataset.state;
  if (state === 'connected' && st.ws) {
    if (t && t !== st.token) refreshToken(t);
    return;
  }
  if (!t) {
    setStatus('error', 'No token', 'Paste a JWT or pick a sample token first.');
    ui.token.focus();
    return;
  }
  if (st.retryTimer) {
    // "Retry now" during a backoff wait, with what the field holds now
    st.token = t;
    open();
    return;
  }
  st.want = true;
  st.token = t;
  st.attempt = 0;
  st.resumable = false;
  st.positions.clear();
  st.held = null;
  st.lastId = '';
  const p = decodeToken(t);
  applyRole(p ? p.role : null);
  activity('connecting…');
  open();
}

function userDisconnect() {
  st.want = false;
  clearRetry();
  const ws = st.ws;
  st.ws = null;
  st.pending = [];
  if (ws) ws.close(1000, 'user disconnected');
  if (st.es) st.es.close();
  st.es = null;
  st.lastId = '';
  st.resumable = false;
  st.held = null;
  stopStats();
  for (const k of Object.keys(ui.subs)) {
    ui.subs[k].subscribed = false;
    setSubState(k, '', '');
  }
  setStatus('disconnected');
  activity('disconnected');
}

function clearRetry() {
  clearTimeout(st.retryTimer);
  clearInterval(st.countdown);
  st.retryTimer = 0;
  st.countdown = 0;
}

// Opens the WebSocket with st.token (automatic retries keep the token the
// session started with, whatever is being typed in the field meanwhile).
function open() {
  clearRetry();
  st.expiredNotice = false;
  if (st.attempt > 0 && tokenPastExp(st.token)) {
    tokenExpired('not reconnecting with an expired token');
    return;
  }
  if (ui.transport.value === 'sse') {
    openStream();
    return;
  }
  setStatus('connecting', st.attempt ? `Reconnecting… (attempt ${st.attempt})` : 'Connecting…');
  let ws;
  try {
    ws = new WebSocket(wsUrl(st.token));
  } catch (e) {
    st.want = false;
    setStatus('error', 'Error', `Cannot open the WebSocket: ${e.message}`);
    return;
  }
  st.ws = ws;
  st.pending = [];
  let opened = false;
  ws.addEventListener('open', () => {
    opened = true;
  });
  ws.addEventListener('message', (m) => {
    if (ws === st.ws) onFrame(m.data);
  });
  ws.addEventListener('close', (ev) => {
    if (ws === st.ws) onClose(ev, opened);
  });
}

function onClose(ev, opened) {
  st.ws = null;
  st.pending = [];
  ui.rtt.textContent = '';
  st.held = null; // a resume not answered: keep the positions we had
  for (const k of Object.keys(ui.subs)) {
    ui.subs[k].subscribed = false; // a new connection subscribes again (with the filter)
    if (ui.subs[k].input.checked) setSubState(k, '', '');
  }
  if (!st.want) {
    setStatus('disconnected');
    return;
  }
  // 4401, or a close right after the server's token_expired notice
  if (ev.code === 4401 || st.expiredNotice) {
    tokenExpired(`closed by the server, code ${ev.code}`);
    return;
  }
  if (!opened) {
    diagnose();
    return;
  }
  // a connection that lived a while starts the backoff again; one that the
  // server drops at once keeps backing off
  if (Date.now() - st.connectedAt > 5000) st.attempt = 0;
  const why = ev.code === 1001 ? 'omsd is going away'
    : ev.code === 1013 ? 'the server dropped a slow connection (1013)'
    : ev.code === 1008 ? `closed by policy (1008${ev.reason ? `: ${ev.reason}` : ''})`
    : `connection lost (${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`;
  activity(why, 'warn');
  scheduleRetry(why);
}

function tokenExpired(how) {
  st.want = false;
  clearRetry();
  stopStats();
  setStatus('error', 'Token expired', 'The token expired and the server ended the session (4401). Paste a new token and connect.');
  activity(`token expired: ${how}`, 'error');
}

function tokenPastExp(t) {
  const p = decodeToken(t);
  return p && typeof p.exp === 'number' && p.exp <= Date.now() / 1000;
}

// The browser cannot read a refused upgrade's answer; a plain GET of the same
// URL runs the same checks and answers 401/403 with the reason, or 426 when
// the token is fine.
async function diagnose() {
  let r = null;
  let body = null;
  try {
    r = await fetch(`/events?token=${encodeURIComponent(st.token)}`, { cache: 'no-store' });
    body = await r.json().catch(() => null);
  } catch {
    r = null;
  }
  if (!st.want) return;
  const msg = body && body.error ? body.error.message : '';
  if (r && (r.status === 401 || r.status === 403)) {
    st.want = false;
    stopStats();
    const expired = body && body.error && body.error.code === 'token_expired';
    const text = expired ? `token expired (401): ${msg}`
      : r.status === 401 ? `authentication failed (401): ${msg}`
      : `refused (403): ${msg}`;
    setStatus('error', expired ? 'Token expired' : r.status === 401 ? 'Authentication failed' : 'Refused', text);
    activity(text, 'error');
    return;
  }
  const why = r ? (r.status === 426 ? 'the server refused the connection' : `the server answered ${r.status}${msg ? `: ${msg}` : ''}`)
    : 'omsd is unreachable';
  if (st.attempt === 0 || !r) activity(why, 'warn');
  scheduleRetry(why);
  checkHealth();
}

function scheduleRetry(why) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** st.attempt);
  const delay = Math.round(base / 2 + (Math.random() * base) / 2); // jitter: 50–100 %
  st.attempt++;
  st.retryAt = Date.now() + delay;
  const tick = () => {
    const left = Math.max(0, (st.retryAt - Date.now()) / 1000);
    const sentence = why.startsWith('omsd') ? why : why[0].toUpperCase() + why.slice(1);
    setStatus('connecting', 'Reconnecting…', `${sentence} — retrying in ${left.toFixed(1)} s (attempt ${st.attempt}).`);
  };
  st.retryTimer = setTimeout(() => {
    st.retryTimer = 0;
    clearInterval(st.countdown);
    if (st.want) open();
  }, delay);
  tick();
  st.countdown = setInterval(tick, 200);
}

function refreshToken(t) {
  const p = decodeToken(t);
  send('refresh_token', { token: t }, { what: 'refresh_token', token: t });
  activity(`refreshing the token${p && p.exp ? ` (expires in ${duration(p.exp - Date.now() / 1000)})` : ''}`);
}

// ---- Server-Sent Events (/events/stream) ------------------------------------------------

function streamUrl() {
  const subs = [];
  if (ui.subs.order.input.checked && !ui.subs.order.input.disabled) subs.push('orders');
  if (ui.subs.inventory.input.checked && !ui.subs.inventory.input.disabled) subs.push('inventory');
  let u = `/events/stream?token=${encodeURIComponent(st.token)}`;
  if (subs.length) u += `&subscribe=${subs.join(',')}`;
  // a stream opened again by us (not by the browser) says where it was
  if (st.lastId) u += `&lastEventId=${encodeURIComponent(st.lastId)}`;
  return u;
}

// The EventSource reconnects by itself (sending Last-Event-ID); we only
// open a new one when the subscriptions change or the browser gave up.
function openStream() {
  if (st.es) st.es.close();
  setStatus('connecting', st.attempt ? `Reconnecting… (attempt ${st.attempt})` : 'Connecting…');
  const es = new EventSource(streamUrl());
  st.es = es;
  const on = (name, fn) => es.addEventListener(name, (e) => {
    if (es !== st.es) return;
    if (e.lastEventId) st.lastId = e.lastEventId;
    let data = null;
    try {
      data = JSON.parse(e.data);
    } catch {
      activity('a stream event that is not JSON arrived', 'warn');
      return;
    }
    fn(data || {});
  });
  on('connected', onStreamConnected);
  on('resumed', onResumed);
  on('subscription_confirmed', onSubscriptionConfirmed);
  for (const name of Object.keys(KIND_OF)) on(name, (d) => onEvent(name, d));
  es.addEventListener('error', (e) => {
    if (es !== st.es) return;
    if (e.data) {
      // the server's own `error` event: the token expired
      let d = {};
      try { d = JSON.parse(e.data); } catch { /* keep {} */ }
      if (d.code === 'token_expired') {
        es.close();
        st.es = null;
        tokenExpired('the event stream ended');
      } else activity(`server error ${d.code || ''}: ${d.message || ''}`, 'error');
      return;
    }
    if (es.readyState === EventSource.CONNECTING) {
      // lost: the browser reconnects by itself and resumes from the last id
      setStatus('connecting', 'Reconnecting…', 'The event stream was cut — the browser reconnects and resumes from the last event.');
      activity('event stream lost: reconnecting with Last-Event-ID', 'warn');
      return;
    }
    // refused (401, 403, ...) or unreachable: the browser gave up
    es.close();
    st.es = null;
    if (st.want) diagnoseStream();
  });
}

function onStreamConnected(d) {
  st.attempt = 0;
  st.connectedAt = Date.now();
  st.session = { userId: d.userId, role: d.role };
  applyRole(d.role);
  const who = `${d.role}${d.userId !== null && d.userId !== undefined ? ` · user ${d.userId}` : ''}`;
  setStatus('connected', 'Connected', 'Server-Sent Events: one-way, resumed by the browser with Last-Event-ID.', `as ${who}`);
  activity(`connected as ${who} (Server-Sent Events)`, 'ok');
  for (const k of Object.keys(ui.subs)) {
    const s = ui.subs[k];
    if (s.input.checked && !s.input.disabled) setSubState(k, 'Subscribed', 'ok');
    else if (!s.input.checked) setSubState(k, '', '');
  }
  checkHealth();
}

// A subscription confirmed (WebSocket answer, or at a stream's start).
function onSubscriptionConfirmed(data) {
  const k = data && data.type;
  notePositions(data && data.positions, k);
  if (ui.subs[k]) {
    // the server's normalized form of the filter replaces what was typed
    const f = data.filter;
    ui.subs[k].filter.value = f ? JSON.stringify(f) : '';
    ui.subs[k].subscribed = true;
    setSubState(k, f ? 'Subscription confirmed (filtered)' : 'Subscription confirmed', 'ok', data.message);
  }
  activity(data && data.message ? data.message : `subscribed to ${k}`);
}

// Why the browser gave up: the same URL with a plain fetch answers the
// refusal as JSON, or 200 (then it was the network: try again later).
async function diagnoseStream() {
  let r = null;
  let body = null;
  const ctl = new AbortController();
  try {
    r = await fetch(streamUrl(), { cache: 'no-store', signal: ctl.signal, headers: { Accept: 'text/event-stream' } });
    if (r.status !== 200) body = await r.json().catch(() => null);
  } catch {
    r = null;
  }
  ctl.abort();
  if (!st.want) return;
  if (r && r.status !== 200 && r.status < 500) {
    st.want = false;
    stopStats();
    const msg = body && body.error ? body.error.message : r.statusText;
    const expired = body && body.error && body.error.code === 'token_expired';
    const text = `${expired ? 'token expired' : 'refused'} (${r.status}): ${msg}`;
    setStatus('error', expired ? 'Token expired' : r.status === 401 ? 'Authentication failed' : 'Refused', text);
    activity(text, 'error');
    return;
  }
  const why = r ? `the server answered ${r.status}` : 'omsd is unreachable';
  activity(why, 'warn');
  scheduleRetry(why);
  checkHealth();
}

// ---- positions (§3.5) ----------------------------------------------------------------

function parsePosition(s) {
  if (typeof s !== 'string') return null;
  const b = s.lastIndexOf(':');
  const a = s.lastIndexOf(':', b - 1);
  if (a <= 0 || b <= a) return null;
  try {
    return { key: s.slice(0, b), offset: BigInt(s.slice(b + 1)) };
  } catch {
    return null;
  }
}

function notePosition(map, s, group) {
  const p = parsePosition(s);
  if (!p) return;
  const cur = map.get(p.key);
  if (!cur || p.offset > cur.offset) map.set(p.key, { offset: p.offset, group });
}

function notePositions(list, group) {
  if (!Array.isArray(list)) return;
  for (const s of list) notePosition(st.held || st.positions, s, group);
}

function resumeSince() {
  const since = [];
  for (const [key, v] of st.positions) {
    if (v.group === 'notifications' || ui.subs[v.group]?.input.checked) since.push(`${key}:${v.offset}`);
  }
  return since;
}

// ---- frames --------------------------------------------------------------------------

function onFrame(text) {
  let f;
  try {
    f = JSON.parse(text);
  } catch {
    activity('a frame that is not JSON arrived', 'warn');
    return;
  }
  const name = f && f.event;
  const data = f && f.data;
  // answers come in the order of the requests; the server's own notice
  // before it closes an expired connection answers nothing
  const unsolicited = name === 'error' && data && data.code === 'token_expired' &&
    !(st.pending[0] && st.pending[0].what === 'refresh_token');
  const asked = ANSWERS.has(name) && !unsolicited ? st.pending.shift() : undefined;
  if (unsolicited) st.expiredNotice = true;
  switch (name) {
    case 'connected':
      onConnected(data || {});
      break;
    case 'subscription_confirmed':
      onSubscriptionConfirmed(data);
      break;
    case 'unsubscribed':
      if (data && ui.subs[data.type]) {
        ui.subs[data.type].subscribed = false;
        setSubState(data.type, 'Unsubscribed', 'muted');
      }
      activity(`unsubscribed from ${data && data.type}`);
      break;
    case 'pong':
      if (asked && asked.what === 'ping') {
        const ms = performance.now() - asked.sentAt;
        ui.rtt.textContent = `round trip ${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
        ui.rtt.dataset.state = 'ok';
      }
      break;
    case 'error':
      onError(data || {}, asked);
      break;
    case 'token_refreshed':
      if (asked && asked.token) st.token = asked.token;
      activity(`token refreshed; the connection now lasts until ${data && data.expiresAt}`);
      updateConnectButton();
      break;
    case 'resumed':
      onResumed(data || {});
      break;
    default:
      if (KIND_OF[name]) onEvent(name, data || {});
      else activity(`unknown event '${String(name).slice(0, 60)}'`, 'warn');
  }
}

function onConnected(d) {
  const reconnect = st.resumable;
  st.connectedAt = Date.now();
  st.session = { userId: d.userId, role: d.role };
  applyRole(d.role);
  const who = `${d.role}${d.userId !== null && d.userId !== undefined ? ` · user ${d.userId}` : ''}`;
  setStatus('connected', 'Connected', '', `as ${who}`);
  activity(reconnect ? `reconnected as ${who}` : `connected as ${who}`, 'ok');
  if (reconnect) st.held = new Map();
  notePositions(d.positions, 'notifications');
  for (const k of Object.keys(ui.subs)) {
    if (ui.subs[k].input.checked && !ui.subs[k].input.disabled) subscribe(k);
  }
  if (reconnect) {
    const since = resumeSince();
    send('resume', { since }, { what: 'resume' });
  }
  st.resumable = true;
  checkHealth();
}

function onResumed(d) {
  const held = st.held;
  st.held = null;
  if (d.recovered) {
    const n = d.replayed || 0;
    activity(`resumed: ${n} missed event${n === 1 ? '' : 's'} replayed`, 'ok');
    if (n) markGap(`Reconnected — ${n} missed event${n === 1 ? '' : 's'} replayed above`);
  } else {
    activity('resumed: the gap is not recoverable — events sent while disconnected may be missing', 'warn');
    markGap('Reconnected — gap not recoverable: events sent while disconnected may be missing');
  }
  if (held) for (const [key, v] of held) notePosition(st.positions, `${key}:${v.offset}`, v.group);
}

function onError(d, asked) {
  const msg = `${d.code || 'error'}: ${d.message || ''}`;
  if (asked && asked.what === 'subscribe') {
    const s = ui.subs[asked.type];
    // a refused filter leaves the subscription as it was
    s.input.checked = d.code === 'bad_filter' ? !!s.subscribed : false;
    setSubState(asked.type, d.code === 'bad_filter' ? `bad filter: ${d.message}` : d.message || d.code, 'error');
  } else if (asked && asked.what === 'ping') {
    ui.rtt.textContent = msg;
    ui.rtt.dataset.state = 'error';
  } else if (asked && asked.what === 'refresh_token') {
    ui.detail.textContent = `The new token was refused: ${d.message || d.code}`;
  }
  activity(`server error ${msg}`, 'error');
}

function subscribe(kind) {
  // the filter box: a JSON object on the event's fields (empty: everything)
  const text = ui.subs[kind].filter.value.trim();
  let data;
  if (text) {
    try {
      data = { filter: JSON.parse(text) };
    } catch (e) {
      ui.subs[kind].input.checked = !!ui.subs[kind].subscribed;
      setSubState(kind, `the filter is not JSON: ${e.message}`, 'error');
      return;
    }
  }
  const ok = send(kind === 'order' ? 'subscribe_to_orders' : 'subscribe_to_inventory', data, { what: 'subscribe', type: kind });
  if (ok) setSubState(kind, 'Subscribing…', 'muted');
}

// Enter or leaving the box: subscribe again with the new filter (it
// replaces the one before), when subscribed and connected
function onFilter(kind) {
  const live = ui.status.dataset.state === 'connected' && st.ws;
  if (live && ui.subs[kind].input.checked && !ui.subs[kind].input.disabled) subscribe(kind);
}

function setSubState(kind, text, state, title) {
  const s = ui.subs[kind].state;
  if (s.dataset.state === 'muted' && !text && ui.subs[kind].input.disabled) return;
  s.textContent = text;
  s.dataset.state = state || '';
  s.title = title || '';
}

function onToggle(kind) {
  const on = ui.subs[kind].input.checked;
  if (st.es) {
    // a stream's subscriptions are in its URL: a new stream, from the last id
    setSubState(kind, on ? 'Subscribing…' : 'Unsubscribing…', 'muted');
    openStream();
    return;
  }
  const live = ui.status.dataset.state === 'connected' && st.ws;
  if (!live) {
    setSubState(kind, on ? 'on connect' : '', 'muted');
    return;
  }
  if (on) subscribe(kind);
  else if (send('unsubscribe', { type: kind }, { what: 'unsubscribe', type: kind })) setSubState(kind, 'Unsubscribing…', 'muted');
}

function ping() {
  if (send('ping', undefined, { what: 'ping', sentAt: performance.now() })) {
    ui.rtt.textContent = 'waiting for pong…';
    ui.rtt.dataset.state = '';
  }
}

// ---- events: rows, tabs, toasts -------------------------------------------------------

function describe(kind, rt) {
  const d = rt.data || {};
  switch (kind) {
    case 'order': {
      const ref = d.aliasId || d.orderId || '?';
      const moved = d.previousStatus ? `${d.previousStatus} → ${d.status}` : d.status;
      const bits = [];
      if (d.userId !== undefined) bits.push(`user ${d.userId}`);
      if (d.totalAmount !== undefined) bits.push(money(d.totalAmount));
      if (Array.isArray(d.items) && d.items.length) bits.push(`${d.items.length} item${d.items.length === 1 ? '' : 's'}`);
      return {
        title: `Order ${ref}`,
        badge: d.status,
        sub: bits.join(' · '),
        toast: `${d.eventType === 'OrderCreated' ? 'created' : moved || 'updated'}${d.totalAmount !== undefined ? ` · ${money(d.totalAmount)}` : ''}`,
      };
    }
    case 'inventory':
      return {
        title: `${d.productName || 'Product'} #${d.productId}`,
        badge: d.status,
        sub: `quantity ${d.quantity}${d.threshold !== undefined ? ` · threshold ${d.threshold}` : ''}`,
        toast: `${String(d.status || '').replace(/_/g, ' ')} · quantity ${d.quantity}`,
      };
    default:
      return {
        title: d.title || (kind === 'user' ? 'Notification' : 'System notification'),
        badge: kind === 'system' ? d.severity : null,
        sub: d.message || '',
        toast: d.message || '',
      };
  }
}

function onEvent(name, rt) {
  const kind = KIND_OF[name];
  if (rt.id) {
    if (st.seen.has(rt.id)) return; // already shown (a replay overlapping what came live)
    st.seen.add(rt.id);
    st.seenOrder.push(rt.id);
    if (st.seenOrder.length > SEEN_IDS) st.seen.delete(st.seenOrder.shift());
    notePosition(st.held || st.positions, rt.id, GROUP_OF_KIND[kind]);
  }
  const info = describe(kind, rt);
  st.counts[kind]++;
  $(`count-${kind}`).textContent = st.counts[kind];
  const row = addRow(kind, name, rt, info);
  toast(kind, info, row);
}

function badgeClass(v) {
  return `badge b-${String(v).toLowerCase().replace(/[^a-z0-9_-]/g, '')}`;
}

function addRow(kind, name, rt, info) {
  const panel = $(`panel-${kind}`);
  const list = panel.querySelector('.events');
  const li = el('li', 'event');
  li.dataset.kind = kind;
  if (rt.id) li.dataset.id = rt.id;
  const details = el('details');
  const summary = el('summary');
  summary.append(el('time', 'ev-time', eventTime(rt.timestamp)));
  if (info.badge) summary.append(el('span', badgeClass(info.badge), String(info.badge).replace(/_/g, ' ')));
  const main = el('span', 'ev-main');
  main.append(el('span', 'ev-title', info.title));
  if (info.sub) main.append(el('span', 'ev-sub', info.sub));
  summary.append(main);
  if (rt.id) summary.append(el('span', 'ev-pos', rt.id));
  details.append(summary);
  details.addEventListener('toggle', () => {
    if (details.open && !details.querySelector('.json')) details.append(jsonView({ event: name, data: rt }));
  });
  li.append(details);
  list.prepend(li);
  panel.querySelector('.empty').hidden = true;
  while (list.children.length > MAX_ROWS) list.lastChild.remove();
  return li;
}

function markGap(text) {
  for (const kind of Object.keys(st.counts)) {
    const list = $(`panel-${kind}`).querySelector('.events');
    if (!list.firstChild || list.firstChild.classList.contains('gap')) continue;
    const li = el('li', 'gap');
    li.append(el('time', 'ev-time', clock()), el('span', '', text));
    list.prepend(li);
  }
}

// Pretty JSON with token classes, built from text nodes (no HTML parsing).
function jsonView(value) {
  const wrap = el('div', 'json-wrap');
  const pre = el('pre', 'json');
  const text = JSON.stringify(value, null, 2);
  const re = /("(?:\\u[0-9a-fA-F]{4}|\\[^u]|[^\\"])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) pre.append(text.slice(last, m.index));
    if (m[1] !== undefined) {
      pre.append(el('span', m[2] ? 'j-key' : 'j-str', m[1]));
      if (m[2]) pre.append(m[2]);
    } else if (m[3] !== undefined) {
      pre.append(el('span', 'j-lit', m[3]));
    } else {
      pre.append(el('span', 'j-num', m[4]));
    }
    last = re.lastIndex;
  }
  pre.append(text.slice(last));
  const copy = el('button', 'copy ghost', 'Copy');
  copy.type = 'button';
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      copy.textContent = 'Copied';
    } catch {
      copy.textContent = 'Copy failed';
    }
    setTimeout(() => (copy.textContent = 'Copy'), 1500);
  });
  wrap.append(copy, pre);
  return wrap;
}

function toast(kind, info, row) {
  st.toastsShown++;
  ui.toasts.dataset.total = String(st.toastsShown);
  if (!ui.toastsOn.checked) return;
  const t = el('div', 'toast');
  t.dataset.kind = kind;
  t.setAttribute('role', 'status');
  const body = el('button', 'toast-body');
  body.type = 'button';
  body.title = 'Show this event';
  const head = el('span', 'toast-kind', KIND_LABEL[kind]);
  body.append(head, el('span', 'toast-title', info.title));
  if (info.toast) body.append(el('span', 'toast-text', info.toast));
  body.addEventListener('click', () => {
    selectTab(kind);
    const d = row.querySelector('details');
    if (d) d.open = true;
    row.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    dismiss();
  });
  const close = el('button', 'toast-close', '×');
  close.type = 'button';
  close.setAttribute('aria-label', 'Dismiss');
  let timer = setTimeout(dismiss, TOAST_MS);
  function dismiss() {
    clearTimeout(timer);
    t.classList.add('leaving');
    setTimeout(() => t.remove(), 180);
  }
  close.addEventListener('click', dismiss);
  t.addEventListener('mouseenter', () => clearTimeout(timer));
  t.addEventListener('mouseleave', () => {
    clearTimeout(timer);
    timer = setTimeout(dismiss, TOAST_MS / 2);
  });
  t.append(body, close);
  ui.toasts.prepend(t);
  const live = ui.toasts.querySelectorAll('.toast:not(.leaving)');
  for (let i = MAX_TOASTS(); i < live.length; i++) live[i].remove();
}

function selectTab(kind) {
  for (const b of document.querySelectorAll('[role=tab]')) {
    const on = b.dataset.kind === kind;
    b.setAttribute('aria-selected', String(on));
    b.tabIndex = on ? 0 : -1;
    $(b.getAttribute('aria-controls')).hidden = !on;
  }
}

function clearEvents() {
  for (const kind of Object.keys(st.counts)) {
    st.counts[kind] = 0;
    $(`count-${kind}`).textContent = '0';
    const panel = $(`panel-${kind}`);
    panel.querySelector('.events').replaceChildren();
    panel.querySelector('.empty').hidden = false;
  }
  ui.toasts.replaceChildren();
}

// ---- operator panel ----------------------------------------------------------------

let chart = null;

function startStats() {
  if (st.statsTimer) return;
  if (!chart) {
    chart = new LineChart($('chart'), [
      { name: 'events/s', color: '--events' },
      { name: 'deliveries/s', color: '--deliveries' },
    ]);
  }
  pollStats();
  st.statsTimer = setInterval(pollStats, STATS_EVERY_MS);
}

function stopStats() {
  clearInterval(st.statsTimer);
  st.statsTimer = 0;
}

async function pollStats() {
  const token = st.token || ui.token.value.trim();
  try {
    const r = await fetch('/websocket/stats', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
    const j = await r.json().catch(() => null);
    if (!r.ok) {
      ui.statsNote.textContent = `stats: ${(j && j.error && j.error.message) || r.status}`;
      chart.push([null, null]);
      return;
    }
    $('kpi-connections').textContent = j.connections;
    $('kpi-users').textContent = j.usersOnline;
    $('kpi-events').textContent = Number(j.eventsPerSecond || 0).toFixed(1);
    $('kpi-deliveries').textContent = Number(j.deliveriesPerSecond || 0).toFixed(1);
    const lag = j.consumerLag !== undefined ? ` · lag ${j.consumerLag}` : '';
    ui.statsNote.textContent = `updated ${clock().slice(0, 8)}${lag}`;
    chart.push([Number(j.eventsPerSecond) || 0, Number(j.deliveriesPerSecond) || 0]);
  } catch {
    ui.statsNote.textContent = 'stats unavailable: omsd unreachable';
    if (chart) chart.push([null, null]);
  }
}

async function sendBroadcast(e) {
  e.preventDefault();
  const f = ui.broadcast;
  const title = f.title.value.trim();
  const message = f.message.value.trim();
  const result = (text, state) => {
    ui.bcResult.textContent = text;
    ui.bcResult.dataset.state = state;
  };
  if (!title || !message) {
    result('A title and a message are required.', 'error');
    (title ? f.message : f.title).focus();
    return;
  }
  const body = { type: 'system', title, message, severity: f.severity.value };
  const raw = f.data.value.trim();
  if (raw) {
    try {
      body.data = JSON.parse(raw);
    } catch (err) {
      result(`Data is not valid JSON: ${err.message}`, 'error');
      f.data.focus();
      return;
    }
  }
  const button = $('bc-send');
  button.disabled = true;
  result('Sending…', '');
  try {
    const r = await fetch('/websocket/broadcast', {
      method: 'POST',
      headers: { Authorization: `Bearer ${st.token || ui.token.value.trim()}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const j = await r.json().catch(() => null);
    if (r.status === 202) {
      result(`Broadcast sent (event ${j && j.eventId ? j.eventId.slice(0, 13) + '…' : 'accepted'})`, 'ok');
      activity(`broadcast "${title}" sent`, 'ok');
      f.title.value = '';
      f.message.value = '';
      f.data.value = '';
    } else {
      result(`Refused (${r.status}): ${(j && j.error && j.error.message) || r.statusText}`, 'error');
    }
  } catch {
    result('omsd is unreachable', 'error');
  } finally {
    button.disabled = false;
  }
}

// ---- wiring --------------------------------------------------------------------------

function init() {
  $('ws-url').textContent = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/events`;
  ui.connect.addEventListener('click', userConnect);
  ui.disconnect.addEventListener('click', userDisconnect);
  ui.token.addEventListener('input', () => {
    for (const o of ui.sampleButtons.children) o.setAttribute('aria-pressed', 'false');
    showTokenInfo();
  });
  ui.token.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      userConnect();
    }
  });
  ui.ping.addEventListener('click', ping);
  for (const k of Object.keys(ui.subs)) ui.subs[k].input.addEventListener('change', () => onToggle(k));
  for (const k of Object.keys(ui.subs)) ui.subs[k].filter.addEventListener('change', () => onFilter(k));
  const tabs = [...document.querySelectorAll('[role=tab]')];
  for (const b of tabs) {
    b.addEventListener('click', () => selectTab(b.dataset.kind));
    b.addEventListener('keydown', (e) => {
      const i = tabs.indexOf(b);
      const to = e.key === 'ArrowRight' ? tabs[(i + 1) % tabs.length] : e.key === 'ArrowLeft' ? tabs[(i + tabs.length - 1) % tabs.length] : null;
      if (to) {
        selectTab(to.dataset.kind);
        to.focus();
      }
    });
  }
  $('clear').addEventListener('click', clearEvents);
  ui.broadcast.addEventListener('submit', sendBroadcast);
  // a token's remaining time, kept current
  setInterval(() => {
    if (ui.token.value.trim()) showTokenInfo();
  }, 30000);
  try {
    const saved = sessionStorage.getItem('oms.token');
    if (saved) ui.token.value = saved;
  } catch {
    /* storage may be off */
  }
  showTokenInfo();
  setStatus('disconnected');
  loadSampleTokens();
  checkHealth();
}

init();
