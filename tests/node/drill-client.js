#!/usr/bin/env node
// drill-client.js — many WebSocket clients of omsd in one process, for the
// failure drills and the soak (tests/drills/). Each client subscribes, keeps
// every eventId it receives (across reconnects), keeps its highest position per
// TOPIC:PARTITION and, after a reconnect, subscribes again and sends
// `resume {since}` (DESIGN §3.5), as the web console does.
//
//   node drill-client.js --url ws://127.0.0.1:PORT/events --out DIR
//       [--clients 200] [--customers 40] [--max-seconds 600]
//       [--churn PER_MIN]   (soak: close and reopen this many clients a minute)
//
// JWT_SECRET signs the tokens (HS256). Clients 0..C-1 are admin (even) and
// staff (odd) subscribed to orders and inventory, user ids 9000+i; the last
// --customers are customers 1..N subscribed to their orders.
// DIR/control: "stall" makes client 0 stop reading (its socket is paused),
// "read" makes it read again. SIGTERM or SIGINT writes the results and exits.
// Files: DIR/status.json (every 500 ms), and at the end DIR/clients.jsonl (one
// line per client: role, userId, eventIds received in order, connects, closes,
// resumes) and DIR/summary.json (deliveries per 250 ms bucket, totals).
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const WebSocket = require('ws');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf('--' + name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};
const URL_ = opt('url');
const OUT = opt('out');
const N = Number(opt('clients', 200));
const CUSTOMERS = Math.min(N, Number(opt('customers', 40)));
const MAX_S = Number(opt('max-seconds', 600));
const CHURN = Number(opt('churn', 0));
const SECRET = process.env.JWT_SECRET;
if (!URL_ || !OUT || !SECRET) {
  console.error('drill-client: usage: JWT_SECRET=... node drill-client.js --url WS_URL --out DIR [--clients N] [--customers N]');
  process.exit(2);
}
fs.mkdirSync(OUT, { recursive: true });

const BUCKET_MS = 250;
const EVENTS = new Set(['order_update', 'inventory_update', 'user_notification', 'system_notification']);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
function token(role, userId) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: 'HS256', typ: 'JWT' }) + '.' +
    b64({ sub: String(userId), userId, role, iat: now, exp: now + 6 * 3600 });
  return head + '.' + crypto.createHmac('sha256', SECRET).update(head).digest('base64url');
}

const t0 = Date.now();
const hist = new Map(); // bucket → deliveries
let total = 0;
let lastEventMs = 0;
let stopping = false;

class DrillClient {
  constructor(i) {
    this.i = i;
    const customer = i >= N - CUSTOMERS;
    this.role = customer ? 'customer' : i % 2 === 0 ? 'admin' : 'staff';
    this.userId = customer ? i - (N - CUSTOMERS) + 1 : 9000 + i;
    this.subs = customer ? ['orders'] : ['orders', 'inventory'];
    this.ids = [];
    this.positions = new Map(); // 'topic:partition' → highest offset seen
    this.held = null; // positions announced by a reconnect, merged if resume fails
    this.connects = 0;
    this.closes = [];
    this.resumes = [];
    this.confirmed = 0;
    this.ws = null;
    this.open = false;
    this.backoff = 200;
    this.paused = false;
    this.churned = false;
  }

  note(list, into) {
    if (!Array.isArray(list)) return;
    for (const s of list) {
      const k = s.lastIndexOf(':');
      const key = s.slice(0, k);
      const off = Number(s.slice(k + 1));
      const cur = into.get(key);
      if (cur === undefined || off > cur) into.set(key, off);
    }
  }

  connect() {
    if (stopping) return;
    const ws = new WebSocket(URL_, { headers: { Authorization: 'Bearer ' + token(this.role, this.userId) }, maxPayload: 64 << 20 });
    this.ws = ws;
    this.confirmed = 0;
    ws.on('message', (m) => this.onFrame(m));
    ws.on('error', () => {});
    ws.on('close', (code) => {
      if (this.ws !== ws) return;
      this.open = false;
      this.ws = null;
      this.closes.push([Date.now() - t0, code]);
      if (stopping) return;
      const wait = this.churned ? 100 : this.backoff + Math.floor(Math.random() * 100);
      this.churned = false;
      this.backoff = Math.min(this.backoff * 2, 2000);
      setTimeout(() => this.connect(), wait);
    });
  }

  onFrame(m) {
    let f;
    try { f = JSON.parse(m.toString()); } catch { return; }
    const d = f.data || {};
    if (EVENTS.has(f.event)) {
      const id = d.data && d.data.eventId;
      this.ids.push(id || '?' + d.id);
      if (typeof d.id === 'string') this.note([d.id], this.positions);
      total++;
      const now = Date.now();
      lastEventMs = now - t0;
      const b = Math.floor((now - t0) / BUCKET_MS);
      hist.set(b, (hist.get(b) || 0) + 1);
      return;
    }
    switch (f.event) {
      case 'connected': {
        const again = this.connects > 0;
        this.connects++;
        this.open = true;
        this.backoff = 200;
        if (again) this.held = new Map();
        this.note(d.positions, again ? this.held : this.positions);
        const since = [...this.positions].map(([k, o]) => `${k}:${o}`);
        if (this.subs.includes('orders')) this.send('subscribe_to_orders');
        if (this.subs.includes('inventory')) this.send('subscribe_to_inventory');
        if (again) this.send('resume', { since });
        break;
      }
      case 'subscription_confirmed':
        this.confirmed++;
        this.note(d.positions, this.held || this.positions);
        break;
      case 'resumed':
        this.resumes.push([Date.now() - t0, !!d.recovered, d.replayed || 0]);
        // a gap that cannot be filled: go on from where the server stands
        if (!d.recovered && this.held) for (const [k, o] of this.held) {
          const cur = this.positions.get(k);
          if (cur === undefined || o > cur) this.positions.set(k, o);
        }
        this.held = null;
        break;
      default:
        break;
    }
  }

  send(event, data) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN)
      this.ws.send(JSON.stringify(data === undefined ? { event } : { event, data }));
  }

  ready() {
    return this.open && this.confirmed >= this.subs.length;
  }
}

const clients = [];
for (let i = 0; i < N; i++) clients.push(new DrillClient(i));
// open in batches so that the handshakes do not all land at once
let next = 0;
const opener = setInterval(() => {
  for (let k = 0; k < 20 && next < N; k++) clients[next++].connect();
  if (next >= N) clearInterval(opener);
}, 50);

function status() {
  let ready = 0, open = 0, reconnects = 0, resumedOk = 0, resumedFail = 0, lastResumeMs = 0;
  const codes = {};
  for (const c of clients) {
    if (c.ready()) ready++;
    if (c.open) open++;
    reconnects += Math.max(0, c.connects - 1);
    for (const [t, ok] of c.resumes) {
      if (ok) resumedOk++; else resumedFail++;
      if (t > lastResumeMs) lastResumeMs = t;
    }
    for (const [, code] of c.closes) codes[code] = (codes[code] || 0) + 1;
  }
  return { t: Date.now() - t0, startedAt: t0, clients: N, ready, open, events: total, lastEventMs, reconnects,
    resumedOk, resumedFail, lastResumeMs, closes: codes, stalled: clients[0].paused,
    c0: { open: clients[0].open, connects: clients[0].connects, closes: clients[0].closes.length,
      resumes: clients[0].resumes.length, events: clients[0].ids.length } };
}
function writeStatus() {
  const tmp = path.join(OUT, 'status.json.tmp');
  fs.writeFileSync(tmp, JSON.stringify(status()));
  fs.renameSync(tmp, path.join(OUT, 'status.json'));
}
const statusTimer = setInterval(writeStatus, 500);

// soak: a few clients close and come back every minute (they resume)
let churnTimer = null;
if (CHURN > 0) {
  churnTimer = setInterval(() => {
    const c = clients[1 + Math.floor(Math.random() * (N - 1))];
    if (c.ws && c.open) { c.churned = true; c.ws.close(1000); }
  }, Math.max(50, Math.floor(60000 / CHURN)));
}

// DIR/control holds "stall" (client 0 stops reading: its socket is paused)
// or "read"; checked every 20 ms. ws resumes a socket it paused itself once
// its parser drains, so a stalled socket is paused again each time.
setInterval(() => {
  let want;
  try { want = fs.readFileSync(path.join(OUT, 'control'), 'utf8').trim(); } catch { return; }
  const c = clients[0];
  const sock = c.ws && c.ws._socket;
  if (want === 'stall') {
    c.paused = true;
    if (sock && !sock.isPaused()) sock.pause();
  } else if (want === 'read' && c.paused) {
    c.paused = false;
    if (sock) sock.resume();
  }
}, 20);

function finish() {
  if (stopping) return;
  stopping = true;
  clearInterval(opener);
  clearInterval(statusTimer);
  if (churnTimer) clearInterval(churnTimer);
  writeStatus();
  const lines = clients.map((c) => JSON.stringify({ i: c.i, role: c.role, userId: c.userId, subs: c.subs,
    connects: c.connects, closes: c.closes, resumes: c.resumes, ids: c.ids }));
  fs.writeFileSync(path.join(OUT, 'clients.jsonl'), lines.join('\n') + '\n');
  const h = {};
  for (const [b, n] of hist) h[b] = n;
  fs.writeFileSync(path.join(OUT, 'summary.json'), JSON.stringify({ startedAt: t0, bucketMs: BUCKET_MS, hist: h, ...status() }));
  for (const c of clients) if (c.ws) c.ws.terminate();
  setTimeout(() => process.exit(0), 100);
}
process.on('SIGTERM', finish);
process.on('SIGINT', finish);
setTimeout(finish, MAX_S * 1000);
