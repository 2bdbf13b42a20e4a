'use strict';
// The recovery benchmark's client side (bench-recovery.sh; node_modules of
// tests/node for `ws`). Raw protocol clients, light enough for thousands in
// one process: Socket.IO over Engine.IO 4 WebSocket (CONNECT auth
// {token, pid, offset}, the offset is each event's last argument) and SSE
// over plain HTTP (Last-Event-ID).
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const crypto = require('node:crypto');
const { execFileSync, spawn } = require('node:child_process');
const WebSocket = require('ws');

const env = process.env;
const CLIENTS = Number(env.CLIENTS), EVENTS = Number(env.EVENTS), RATE = Number(env.RATE);
const PORT_A = Number(env.PORT_A), PORT_B = Number(env.PORT_B);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
function tok(role, userId) {
  const now = Math.floor(Date.now() / 1000);
  const h = b64({ alg: 'HS256', typ: 'JWT' });
  const p = b64({ sub: String(userId), userId, role, iat: now, exp: now + 3600 });
  return `${h}.${p}.${crypto.createHmac('sha256', env.JWT_SECRET).update(`${h}.${p}`).digest('base64url')}`;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (a, q) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };

// ---- omsd ------------------------------------------------------------------------------

const procs = {};
async function startOmsd(name, port) {
  const log = fs.openSync(path.join(env.OUT, `${name}.log`), 'a');
  const p = spawn(`${env.BIN}/omsd`, ['--config', path.join(env.OUT, `${name}.yaml`)], { stdio: ['ignore', log, log] });
  procs[name] = p;
  for (let i = 0; i < 150; i++) {
    try { if ((await fetch(`http://127.0.0.1:${port}/websocket/health`)).ok) return; } catch { /* not yet */ }
    await sleep(100);
  }
  throw new Error(`omsd ${name} did not start`);
}
function kill(name, sig) {
  const p = procs[name];
  delete procs[name];
  return new Promise((r) => { p.once('exit', r); p.kill(sig); });
}

// exactly n order events, through emit
let seed = 1;
function produceOrders(n) {
  const lines = execFileSync(`${env.BIN}/oms-producer`, ['simulate', '--dry-run', '--print', '--rate', 'max', '--duration', '0', '--count', String(n * 8), '--seed', String(seed++), '--users', '200'], { encoding: 'utf8', maxBuffer: 1 << 30 })
    .split('\n').filter((l) => l.includes('"type":"Order')).slice(0, n);
  execFileSync(`${env.BIN}/oms-producer`, ['emit', '--file', '-'], { input: lines.join('\n') + '\n', stdio: ['pipe', 'ignore', 'inherit'] });
}

// ---- Socket.IO, raw ------------------------------------------------------------------------

function sio(port, userId, auth, onDone) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: false });
    const c = { ws, pid: null, offset: null, events: 0, answer: null, subscribed: false };
    ws.on('message', (m) => {
      const s = m.toString();
      if (s === '2') return ws.send('3');
      if (s[0] === '0') return ws.send('40/events,' + JSON.stringify(auth));
      if (s.startsWith('40/events,')) {
        c.answer = JSON.parse(s.slice(10));
        if (onDone) onDone(c);
        else ws.send('42/events,["subscribe_to_orders"]');
        return resolve(c);
      }
      if (s.startsWith('42/events,')) {
        if (s.endsWith('"]')) c.offset = s.slice(s.lastIndexOf(',"') + 2, -2);
        if (s.startsWith('42/events,["order_update"')) c.events++;
        else if (s.startsWith('42/events,["subscription_confirmed"')) c.subscribed = true;
      }
    });
    ws.on('error', reject);
  });
}

// ---- SSE, raw --------------------------------------------------------------------------------

function sse(port, userId, lastId, onDone) {
  return new Promise((resolve, reject) => {
    const headers = { Accept: 'text/event-stream', Authorization: 'Bearer ' + tok('staff', userId) };
    if (lastId) headers['Last-Event-ID'] = lastId;
    const req = http.get({ host: '127.0.0.1', port, path: '/events/stream?subscribe=orders', headers, agent: false }, (res) => {
      const c = { req, lastId: null, events: 0, resumed: null, connected: false };
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (block.startsWith('id: ')) c.lastId = block.slice(4, block.indexOf('\n'));
          if (block.includes('event: order_update\n')) c.events++;
          else if (block.includes('event: connected\n')) c.connected = true;
          else if (block.includes('event: resumed\n')) {
            c.resumed = JSON.parse(block.slice(block.indexOf('data: ') + 6));
            if (onDone) onDone(c);
          }
        }
      });
      res.on('error', () => {});
      resolve(c);
    });
    req.on('error', reject);
  });
}

// ---- live load on B ------------------------------------------------------------------------

function liveRate(file, from, to) {
  // "UNIX_MS EVENTS OPEN" lines, cumulative: events/s between from and to
  const rows = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number));
  const inside = rows.filter((r) => r[0] >= from - 1000 && r[0] <= to + 1000);
  if (inside.length < 2) return NaN;
  const a = inside[0], b = inside[inside.length - 1];
  return (b[1] - a[1]) / ((b[0] - a[0]) / 1000);
}

async function phase(kind) {
  await startOmsd('A', PORT_A);
  // the clients on A, subscribed, each with an offset
  const cs = [];
  for (let i = 0; i < CLIENTS; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(CLIENTS, i + 100); j++) {
      const uid = 20000 + j;
      batch.push(kind === 'socketio' ? sio(PORT_A, uid, { token: tok('staff', uid) }) : sse(PORT_A, uid, null));
    }
    cs.push(...(await Promise.all(batch)));
  }
  produceOrders(20);
  const ready = () => cs.every((c) => (kind === 'socketio' ? c.subscribed && c.offset : c.connected && c.lastId && c.events > 0));
  for (let i = 0; i < 300 && !ready(); i++) await sleep(100);
  if (!ready()) throw new Error(`${kind}: clients not ready on A`);
  const quietFrom = Date.now();
  await sleep(5000);
  const quietTo = Date.now();
  // A dies; the gap fills; everyone comes back to B at once
  await kill('A', 'SIGKILL');
  for (const c of cs) (kind === 'socketio' ? c.ws.terminate() : c.req.destroy());
  produceOrders(EVENTS);
  await sleep(1000);
  const t0 = Date.now();
  const times = [];
  let recovered = 0, replayed = 0, doneCount = 0;
  let allDone;
  const finished = new Promise((r) => (allDone = r));
  const done = (ok, n) => {
    times.push(Date.now() - t0);
    if (ok) recovered++;
    replayed += n;
    if (++doneCount === cs.length) allDone();
  };
  const back = await Promise.all(cs.map((c, j) => {
    const uid = 20000 + j;
    if (kind === 'socketio')
      return sio(PORT_B, uid, { pid: c.answer.pid, offset: c.offset, token: tok('staff', uid) },
        (n) => done(n.answer.pid === c.answer.pid, n.events));
    return sse(PORT_B, uid, c.lastId, (n) => done(n.resumed.recovered, n.events));
  }));
  await Promise.race([finished, sleep(120000)]);
  const busyTo = Date.now();
  const all = busyTo - t0;
  const live = path.join(env.OUT, 'live.progress');
  const before = liveRate(live, quietFrom, quietTo);
  const during = liveRate(live, t0, Math.max(busyTo, t0 + 2000));
  const r = {
    kind, clients: cs.length, done: doneCount, recovered, replayedPerClient: Math.round(replayed / Math.max(1, doneCount)),
    p50: pct(times, 0.5), p95: pct(times, 0.95), max: Math.max(...times), allMs: all,
    liveBefore: Math.round(before), liveDuring: Math.round(during),
  };
  console.log(`recovery ${kind}: ${r.done}/${r.clients} clients back on B, recovered ${r.recovered}, ${r.replayedPerClient} events replayed each; ` +
    `time to recovered p50 ${r.p50} ms, p95 ${r.p95} ms, max ${r.max} ms; all done in ${r.allMs} ms`);
  console.log(`recovery ${kind}: live inventory events/s to the ${CLIENTS} other clients on B: ${r.liveBefore} before, ${r.liveDuring} during the recoveries (${(100 * during / before).toFixed(0)}%)`);
  for (const c of back) (kind === 'socketio' ? c.ws.terminate() : c.req.destroy());
  await sleep(1000);
  return r;
}

(async () => {
  await startOmsd('B', PORT_B);
  // the live clients take inventory alerts: the burst of orders the
  // recovering clients missed is not theirs, so what they get measures the
  // recoveries' effect alone
  const load = spawn(env.LOAD, ['--url', `ws://127.0.0.1:${PORT_B}/events`, '--connections', String(CLIENTS), '--subscribe', 'inventory',
    '--duration', '600', '--first-user-id', '100000', '--progress-file', path.join(env.OUT, 'live.progress'), '--json'],
  { stdio: ['ignore', fs.openSync(path.join(env.OUT, 'load.out'), 'w'), 'inherit'] });
  await sleep(3000);
  const prod = spawn(`${env.BIN}/oms-producer`, ['simulate', '--rate', String(RATE), '--duration', '600', '--seed', '77', '--users', '200'], { stdio: 'ignore' });
  await sleep(2000);
  const out = [];
  try {
    for (const kind of ['socketio', 'sse']) out.push(await phase(kind));
  } finally {
    prod.kill('SIGTERM');
    load.kill('SIGTERM');
    for (const n of Object.keys(procs)) await kill(n, 'SIGTERM');
  }
  fs.writeFileSync(path.join(env.OUT, 'results.json'), JSON.stringify(out, null, 1));
  process.exit(0);
})().catch((e) => {
  console.error('recovery:', e.message);
  for (const p of Object.values(procs)) p.kill('SIGKILL');
  process.exit(1);
});
