// Shared helpers for the end-to-end tests: tokens, WebSocket clients that
// record what they receive, REST calls, Kafka via the project's tools.
'use strict';
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const WebSocket = require('ws');

const env = process.env;
const PORT = Number(env.OMS_PORT);
const BASE = `http://127.0.0.1:${PORT}`;
const WS_URL = `ws://127.0.0.1:${PORT}/events`;
const SECRET = env.JWT_SECRET;

const b64 = (o) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');

function token(claims, { secret = SECRET, alg = 'HS256', ttl = 3600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iat: now, exp: now + ttl, ...claims };
  const head = b64({ alg, typ: 'JWT' }) + '.' + b64(payload);
  if (alg === 'none') return head + '.';
  return head + '.' + crypto.createHmac('sha256', secret).update(head).digest('base64url');
}
const tok = (role, userId, opts) => token({ sub: String(userId), userId, role }, opts);

// A client that keeps every frame; next(pred) waits for a matching one.
class Client {
  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.waiters = [];
    this.closed = null;
    ws.on('message', (m) => {
      const f = JSON.parse(m.toString());
      this.frames.push(f);
      this.waiters = this.waiters.filter((w) => !(w.pred(f) && (w.resolve(f), true)));
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of this.closeWaiters || []) w(this.closed);
    });
  }
  next(pred, ms = 5000, what = 'frame') {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
      this.waiters.push({ pred, resolve: (f) => { clearTimeout(t); resolve(f); } });
    });
  }
  event(name, ms, pred = () => true) {
    return this.next((f) => f.event === name && pred(f.data), ms, name);
  }
  all(name) {
    return this.frames.filter((f) => f.event === name);
  }
  send(event, data) {
    this.ws.send(JSON.stringify(data === undefined ? { event } : { event, data }));
  }
  waitClose(ms = 5000) {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timed out waiting for close')), ms);
      (this.closeWaiters ||= []).push((c) => { clearTimeout(t); resolve(c); });
    });
  }
  close() {
    if (!this.closed) this.ws.close();
  }
}

// Connect; resolves with a Client after `connected`, or rejects with
// {status, body} when the upgrade is refused.
function connect({ token: t, query = false, origin, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (t && !query) h.Authorization = 'Bearer ' + t;
    if (origin) h.Origin = origin;
    const url = query && t ? `${WS_URL}?token=${encodeURIComponent(t)}` : WS_URL;
    const ws = new WebSocket(url, { headers: h, maxPayload: 64 << 20 });
    const c = new Client(ws);
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(body); } catch { /* not JSON */ }
        const e = new Error(`upgrade refused: ${res.statusCode}`);
        e.status = res.statusCode; e.body = json; e.headers = res.headers;
        reject(e);
      });
    });
    ws.on('error', (e) => reject(e));
    c.event('connected', 5000).then(() => resolve(c), reject);
  });
}

async function rest(method, path, { token: t, body, raw, headers = {} } = {}) {
  const h = { ...headers };
  if (t) h.Authorization = 'Bearer ' + t;
  let payload;
  if (raw !== undefined) payload = raw;
  else if (body !== undefined) { payload = JSON.stringify(body); h['Content-Type'] = 'application/json'; }
  const r = await fetch(BASE + path, { method, headers: h, body: payload });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* text */ }
  return { status: r.status, json, text, headers: r.headers };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The project's own tools, against the test's topics (OMS_CONFIG is set).
function producer(args) {
  return execFileSync(`${env.BIN}/oms-producer`, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
// The same, without blocking the event loop (clients keep reading meanwhile).
function producerAsync(args) {
  const { execFile } = require('node:child_process');
  return new Promise((resolve, reject) => {
    execFile(`${env.BIN}/oms-producer`, args, { encoding: 'utf8', maxBuffer: 1 << 26 }, (err, out) =>
      err ? reject(err) : resolve(out));
  });
}
function kcat(args, input) {
  return execFileSync('kcat', ['-b', env.KAFKA_BROKERS, ...args], { input, encoding: 'latin1' });
}
async function metric(name) {
  const r = await rest('GET', '/metrics');
  let sum = 0;
  for (const line of r.text.split('\n')) {
    if (line.startsWith(name + ' ') || line.startsWith(name + '{')) sum += Number(line.split(' ').pop());
  }
  return sum;
}

module.exports = { env, PORT, BASE, WS_URL, token, tok, connect, rest, sleep, producer, producerAsync, kcat, metric };
