// Two omsd behind Debian's nginx (deploy/nginx/oms.conf), end to end: REST,
// the console, ws:// and wss:// through nginx, Socket.IO polling (sticky)
// upgrading to WebSocket; then the omsd holding the clients is killed
// (SIGKILL) and the clients reconnect through nginx to the other one and
// resume without loss (DESIGN §3.5). Run by tests/integration/0900-nginx.sh.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const https = require('node:https');
const WebSocket = require('ws');
const { io } = require('socket.io-client');
const { env, tok, producerAsync, sleep } = require('./lib');

const HTTP = `http://127.0.0.1:${env.NGINX_HTTP}`;
const HTTPS = `https://127.0.0.1:${env.NGINX_HTTPS}`;
const CA = fs.readFileSync(env.NGINX_CA);
const BACKENDS = [
  { port: Number(env.OMSD1_PORT), pid: Number(env.OMSD1_PID) },
  { port: Number(env.OMSD2_PORT), pid: Number(env.OMSD2_PID) },
];
const admin = tok('admin', 100);
const run = Math.random().toString(36).slice(2, 8);

// The tokens sent in URLs: 0900-nginx.sh looks for them in nginx's logs.
const urlTokens = new Set();
function urlToken(t) {
  if (!urlTokens.has(t)) {
    urlTokens.add(t);
    fs.appendFileSync(`${env.T}/url-tokens.txt`, t + '\n');
  }
  return encodeURIComponent(t);
}

// A WebSocket client that keeps every frame. Its token is in the URL, as
// the web console sends it.
function connect(base) {
  return new Promise((resolve, reject) => {
    const url = base.replace(/^http/, 'ws') + '/events?token=' + urlToken(admin);
    const ws = new WebSocket(url, { ca: CA });
    const c = { ws, frames: [], waiters: [], closed: null };
    c.next = (pred, ms = 8000, what = 'frame') => {
      const seen = c.frames.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms);
        c.waiters.push({ pred, res: (f) => { clearTimeout(t); res(f); } });
      });
    };
    c.event = (name, ms, pred = () => true) => c.next((f) => f.event === name && pred(f.data), ms, name);
    c.all = (name) => c.frames.filter((f) => f.event === name);
    c.send = (event, data) => ws.send(JSON.stringify(data === undefined ? { event } : { event, data }));
    c.closedP = new Promise((res) => ws.on('close', (code) => { c.closed = code; res(code); }));
    ws.on('message', (m) => {
      const f = JSON.parse(m.toString());
      c.frames.push(f);
      c.waiters = c.waiters.filter((w) => !(w.pred(f) && (w.res(f), true)));
    });
    ws.on('error', reject);
    ws.on('unexpected-response', (req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    c.event('connected').then(() => resolve(c), reject);
  });
}

function get(base, path, { bearer = true } = {}) {
  return new Promise((resolve, reject) => {
    const mod = base.startsWith('https') ? https : require('node:http');
    const headers = bearer ? { Authorization: 'Bearer ' + admin } : {};
    const req = mod.get(base + path, { ca: CA, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body, headers: res.headers }));
    });
    req.on('error', reject);
  });
}

async function emitOrders(prefix, n) {
  const lines = [];
  for (let i = 0; i < n; i++) {
    lines.push(JSON.stringify({ type: 'OrderCreated', orderId: `${prefix}-${i}`, aliasId: `A-${prefix}-${i}`, userId: 1 + (i % 5), totalAmount: 10 + i, status: 'created' }));
  }
  const file = `${env.T}/${prefix}.jsonl`;
  fs.writeFileSync(file, lines.join('\n') + '\n');
  await producerAsync(['emit', '--file', file]);
  return lines.map((l) => JSON.parse(l).orderId);
}

const ordersOf = (c, prefix) => c.all('order_update').map((f) => f.data.data.orderId).filter((id) => id.startsWith(prefix));

// The highest position seen per TOPIC:PARTITION: subscription_confirmed's
// positions, then each event's id.
function positions(c) {
  const best = new Map();
  const note = (p) => {
    const i = p.lastIndexOf(':');
    const key = p.slice(0, i), off = Number(p.slice(i + 1));
    if (!best.has(key) || best.get(key) < off) best.set(key, off);
  };
  for (const f of c.all('subscription_confirmed')) for (const p of f.data.positions || []) note(p);
  for (const f of c.all('order_update')) note(f.data.id);
  return [...best].map(([k, o]) => `${k}:${o}`);
}

async function connectionsOn(port) {
  const r = await get(`http://127.0.0.1:${port}`, '/websocket/health');
  return JSON.parse(r.body).connections;
}

test('REST, console and metrics through nginx, http and https', async () => {
  for (const base of [HTTP, HTTPS]) {
    const h = await get(base, '/websocket/health');
    assert.equal(h.status, 200, h.body);
    assert.equal(JSON.parse(h.body).status, 'ok');
    const s = await get(base, '/websocket/stats');
    assert.equal(s.status, 200, s.body);
    const q = await get(base, '/websocket/stats?token=' + urlToken(tok('staff', 101)), { bearer: false });
    assert.equal(q.status, 200, q.body);
    const page = await get(base, '/');
    assert.equal(page.status, 200);
    assert.match(page.body, /<html/i);
    const m = await get(base, '/metrics');
    assert.equal(m.status, 200, 'metrics are allowed from loopback');
    assert.match(m.body, /^# (HELP|TYPE) /m);
    const live = await get(base, '/livez');
    assert.equal(live.status, 403, 'liveness is not exposed through nginx');
  }
  const hsts = await get(HTTPS, '/websocket/health');
  assert.match(hsts.headers['strict-transport-security'] || '', /max-age=/);
});

test('Socket.IO through nginx: polling (sticky) upgrades to WebSocket', async () => {
  const s = io(HTTP + '/events', { auth: { token: admin }, reconnection: false, forceNew: true, timeout: 8000 });
  try {
    await new Promise((resolve, reject) => {
      s.on('connected', resolve);
      s.on('connect_error', reject);
    });
    const upgraded = s.io.engine.transport.name === 'websocket' ? true
      : await new Promise((resolve) => { s.io.engine.once('upgrade', () => resolve(true)); setTimeout(() => resolve(false), 5000); });
    assert.ok(upgraded, 'the session upgraded to websocket');
    const pong = await s.timeout(5000).emitWithAck('ping');
    assert.ok(pong, 'ping answered with an ack');
  } finally {
    s.disconnect();
  }
});

test('ws:// and wss:// through nginx; kill -9 the omsd; reconnect to the other and resume without loss', async () => {
  const clients = [await connect(HTTP), await connect(HTTPS)];
  const again = [];
  try {
    for (const c of clients) c.send('subscribe_to_orders');
    for (const c of clients) await c.event('subscription_confirmed');

    const before = await emitOrders(`nx-${run}-a`, 12);
    for (const c of clients) {
      for (const id of before) await c.event('order_update', 10000, (d) => d.data.orderId === id);
    }
    for (const c of clients) assert.deepEqual(ordersOf(c, `nx-${run}-a`).sort(), [...before].sort());

    // hash $remote_addr: both clients are on the same omsd
    await sleep(200);
    const counts = [];
    for (const b of BACKENDS) counts.push(await connectionsOn(b.port));
    const victim = counts[0] >= 2 ? 0 : 1;
    assert.equal(counts[victim], 2, `both clients on one omsd (connections ${counts})`);
    assert.equal(counts[1 - victim], 0);
    const since = clients.map(positions);
    process.kill(BACKENDS[victim].pid, 'SIGKILL');
    for (const c of clients) await c.closedP;

    // what happens while the clients are away
    const missed = await emitOrders(`nx-${run}-b`, 9);

    for (const [i, base] of [HTTP, HTTPS].entries()) {
      const c = await connect(base);
      again.push(c);
      assert.ok(await connectionsOn(BACKENDS[1 - victim].port) >= 1, 'reconnected to the survivor');
      c.send('subscribe_to_orders');
      await c.event('subscription_confirmed');
      c.send('resume', { since: since[i] });
      const r = await c.event('resumed', 15000);
      assert.equal(r.data.recovered, true, JSON.stringify(r.data));
      assert.equal(r.data.replayed, missed.length, JSON.stringify({ resumed: r.data, since: since[i] }));
      await sleep(300);
      const got = ordersOf(c, `nx-${run}-b`);
      assert.deepEqual([...got].sort(), [...missed].sort(), 'exactly the missed events');
      assert.equal(ordersOf(c, `nx-${run}-a`).length, 0, 'nothing seen before is sent again');
      const ids = c.all('order_update').map((f) => f.data.id);
      assert.equal(new Set(ids).size, ids.length, 'no duplicate');
    }
    // and live events go on through nginx
    const after = await emitOrders(`nx-${run}-c`, 3);
    for (const c of again) {
      for (const id of after) await c.event('order_update', 10000, (d) => d.data.orderId === id);
    }
  } finally {
    for (const c of [...clients, ...again]) c.ws.terminate();
  }
});

test('Server-Sent Events through nginx: each event arrives as it is sent (no buffering)', async () => {
  const http = require('node:http');
  const got = [];
  let buf = '';
  const req = http.get(`${HTTP}/events/stream?token=${urlToken(admin)}`, { headers: { Accept: 'text/event-stream' } });
  const res = await new Promise((resolve, reject) => { req.on('response', resolve); req.on('error', reject); });
  try {
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'], /^text\/event-stream/);
    res.setEncoding('utf8');
    res.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        got.push(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    });
    const waitFor = async (pred, what) => {
      for (let i = 0; i < 80 && !got.some(pred); i++) await sleep(50);
      assert.ok(got.some(pred), what);
    };
    await waitFor((e) => e.includes('event: connected'), 'connected arrives at once (a buffering proxy would hold it)');
    const title = 'sse-' + run;
    const r = await fetch(`${HTTP}/websocket/broadcast`, {
      method: 'POST', headers: { Authorization: 'Bearer ' + admin, 'Content-Type': 'application/json' },
      body: JSON.stringify({ title, message: 'through nginx' }),
    });
    assert.equal(r.status, 202);
    await waitFor((e) => e.includes('event: system_notification') && e.includes(title), 'the broadcast, streamed');
  } finally {
    req.destroy();
  }
});
