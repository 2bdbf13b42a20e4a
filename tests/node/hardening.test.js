// Hardening of the gateway (issue #15, items 1-5), run by 0980-hardening.sh
// against two ASan builds of omsd:
//   A (OMS_PORT): server.queue_limit 400, max_connections_per_address 60,
//     max_unauthenticated_sessions 100, connect_timeout_s 2
//   B (PORT_B):   resume.read_budget_mb 1, resume.history_size 0 (every
//     resume reads Kafka back)
// The script checks afterwards that both survived and ASan saw nothing.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const WebSocket = require('ws');
const { io } = require('socket.io-client');
const { env, PORT, BASE, tok, token, connect, rest, sleep, producerAsync, metric } = require('./lib');

const PORT_B = Number(env.PORT_B);
const staff = tok('staff', 200);
const admin = tok('admin', 1);
const now = () => Math.floor(Date.now() / 1000);
let uniqN = 0;
const uniq = () => `${process.pid}-${++uniqN}`;

// ---- helpers -----------------------------------------------------------------------------

// HTTP on omsd A from a chosen loopback source address (127.0.0.0/8).
function req(method, pathq, { body, from = '127.0.0.1', port = PORT } = {}) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, method, path: pathq, localAddress: from, agent: false,
      headers: body !== undefined ? { 'Content-Type': 'text/plain;charset=UTF-8', 'Content-Length': Buffer.byteLength(body) } : {} },
    (res) => {
      let text = '';
      res.setEncoding('latin1');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    r.on('error', reject);
    if (body !== undefined) r.write(body);
    r.end();
  });
}
const EIO = '/socket.io/?EIO=4&transport=polling';
async function handshake(from) {
  const r = await req('GET', `${EIO}&t=${uniq()}`, { from });
  if (r.status !== 200) return { status: r.status, text: r.text };
  return { status: 200, sid: JSON.parse(r.text.slice(1)).sid };
}
const pget = (sid, from) => req('GET', `${EIO}&sid=${sid}&t=${uniq()}`, { from });
const ppost = (sid, body, from) => req('POST', `${EIO}&sid=${sid}&t=${uniq()}`, { body, from });
const packets = (text) => text.split('\x1e');

// A polling session joined to /events; returns its sid and the `connected` data.
async function joinedPolling(t = staff) {
  const h = await handshake();
  assert.equal(h.status, 200, h.text);
  assert.equal((await ppost(h.sid, `40/events,${JSON.stringify({ token: t })}`)).status, 200);
  const got = packets((await pget(h.sid)).text);
  assert.ok(got.some((p) => p.startsWith('40/events,')), JSON.stringify(got).slice(0, 200));
  let hello = got.find((p) => p.startsWith('42/events,["connected"'));
  if (!hello) hello = packets((await pget(h.sid)).text).find((p) => p.startsWith('42/events,["connected"'));
  return { sid: h.sid, connected: JSON.parse(hello.slice('42/events,'.length))[1] };
}

// SystemNotifications through oms-producer (every connection gets them).
async function broadcasts(n, pad = 0, port) {
  const file = path.join(env.T, `bc-${uniq()}.jsonl`);
  const msg = 'm'.repeat(pad || 1);
  fs.writeFileSync(file, Array.from({ length: n }, (_, i) => JSON.stringify({ title: `t${i}`, message: msg })).join('\n') + '\n');
  await producerAsync(['emit', 'SystemNotification', '--file', file]);
  void port;
}

// wait until omsd (base url) consumed `want` notifications in total
async function consumed(want, base = BASE, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await fetch(base + '/metrics');
    const line = (await r.text()).split('\n').find((l) => l.startsWith(`oms_events_consumed_total{topic="${env.TOPIC_NOTIFICATIONS}"}`));
    const n = line ? Number(line.split(' ').pop()) : 0;
    if (n >= want) return n;
    if (Date.now() > deadline) throw new Error(`omsd consumed ${n} notifications, wanted ${want}`);
    await sleep(100);
  }
}
let notified = 0; // notifications produced so far (both instances read the same topic)

async function healthFast(port = PORT, ms = 2000) {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), ms);
  try {
    const r = await fetch(`http://127.0.0.1:${port}/websocket/health`, { signal: ac.signal });
    return r.status;
  } catch (e) {
    return 'no answer within ' + ms + ' ms';
  } finally {
    clearTimeout(t);
  }
}

// ---- 1. use-after-free: a polling session overflowing while its resume finishes ------------

test('a polling session whose queue overflows as its resume finishes is closed, nothing else breaks', async () => {
  // positions before the gap, from a first session
  const first = await joinedPolling();
  const since = first.connected.positions;
  await ppost(first.sid, '1');
  // the gap: 300 events (replay > half the queue of 400: it stalls until the client polls)
  await broadcasts(300);
  notified += 300;
  await consumed(notified);
  const s = await joinedPolling();
  const before = await metric('oms_queue_overflow_closes_total');
  assert.equal((await ppost(s.sid, `42/events,${JSON.stringify(['resume', { since }])}`)).status, 200);
  await sleep(300);
  // 350 live events while the replay waits: held behind it
  await broadcasts(350);
  notified += 350;
  await consumed(notified);
  await sleep(300);
  // one poll: the replay ends, `resumed` and the held events overflow the queue of 400
  const r = await pget(s.sid);
  assert.equal(r.status, 200);
  assert.equal(await healthFast(), 200, 'omsd still answers');
  // the overflow happens as the replay is pumped after that answer, on the
  // session's own thread, which may finish after another thread answered
  // the GET (a forwarded request): wait for it a little
  for (let i = 0; i < 40 && !((await metric('oms_queue_overflow_closes_total')) > before); i++) await sleep(50);
  assert.ok((await metric('oms_queue_overflow_closes_total')) > before, 'the session was closed as overflowing');
  const again = await pget(s.sid);
  assert.ok(again.status === 400 || again.text.startsWith('1'), `the session is gone: ${again.status} ${again.text.slice(0, 40)}`);
  // and a fresh one works
  const fresh = await joinedPolling();
  await ppost(fresh.sid, '1');
});

// ---- 2. unauthenticated polling sessions are limited ------------------------------------------

test('unauthenticated polling sessions count per address (429) and in total (503); closing frees them', async () => {
  const mine = [];
  let refused = null;
  for (let i = 0; i < 70; i++) {
    const h = await handshake('127.0.0.1');
    if (h.status !== 200) { refused = h; break; }
    mine.push(['127.0.0.1', h.sid]);
  }
  assert.ok(refused, 'a handshake was refused');
  assert.equal(refused.status, 429);
  assert.match(JSON.parse(refused.text).message, /max_connections_per_address/);
  assert.ok(mine.length >= 55 && mine.length <= 60, `${mine.length} sessions from one address`);
  assert.ok((await metric('oms_sessions_unauthenticated')) >= mine.length);
  // other addresses, until the total of 100 unauthenticated sessions
  let total = null;
  for (const from of ['127.0.0.2', '127.0.0.3']) {
    for (let i = 0; i < 40 && !total; i++) {
      const h = await handshake(from);
      if (h.status !== 200) { total = h; break; }
      mine.push([from, h.sid]);
    }
  }
  assert.ok(total, 'the total was reached');
  assert.equal(total.status, 503);
  assert.match(JSON.parse(total.text).message, /max_unauthenticated_sessions/);
  assert.equal(mine.length, 100);
  assert.ok((await metric('oms_sessions_refused_unauthenticated_total')) >= 1);
  // a Socket.IO WebSocket without a session is refused the same way
  const ws = new WebSocket(`ws://127.0.0.1:${PORT}/socket.io/?EIO=4&transport=websocket`, { localAddress: '127.0.0.4' });
  const status = await new Promise((resolve) => {
    ws.on('unexpected-response', (q, res) => resolve(res.statusCode));
    ws.on('open', () => { ws.close(); resolve(101); });
    ws.on('error', () => {});
  });
  assert.equal(status, 503);
  // a session that authenticates leaves the count: room for one more
  const [, sid0] = mine[0];
  assert.equal((await ppost(sid0, `40/events,${JSON.stringify({ token: staff })}`)).status, 200);
  const h2 = await handshake('127.0.0.4');
  assert.equal(h2.status, 200, 'an authenticated session no longer counts in the total');
  mine.push(['127.0.0.4', h2.sid]);
  // closing gives the slots back
  for (const [from, sid] of mine) await ppost(sid, '1', from);
  await sleep(200);
  assert.equal((await handshake('127.0.0.1')).status, 200);
  assert.equal(await healthFast(), 200);
});

// ---- 3. before CONNECT: a few KiB, a short timeout ---------------------------------------------

test('before CONNECT a Socket.IO session may send 8 KiB at most and must CONNECT within connect_timeout_s', async () => {
  // WebSocket: a 20 KiB message before CONNECT closes with 1009
  const ws = new WebSocket(`ws://127.0.0.1:${PORT}/socket.io/?EIO=4&transport=websocket`);
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  ws.send(`40/events,${JSON.stringify({ token: 'x'.repeat(20000) })}`);
  assert.equal(await closed, 1009);
  // polling: a 20 KiB POST before CONNECT is refused (413), after CONNECT it is fine
  const h = await handshake();
  const big = `42/events,${JSON.stringify(['ping', { pad: 'p'.repeat(20000) }])}`;
  assert.equal((await ppost(h.sid, `40/events,${JSON.stringify({ token: 'y'.repeat(20000) })}`)).status, 413);
  const j = await joinedPolling();
  assert.equal((await ppost(j.sid, big)).status, 200);
  await ppost(j.sid, '1');
  // a WebSocket that never CONNECTs is closed after connect_timeout_s (2 here)
  const t0 = Date.now();
  const idle = new WebSocket(`ws://127.0.0.1:${PORT}/socket.io/?EIO=4&transport=websocket`);
  idle.on('message', (m) => { if (m.toString() === '2') idle.send('3'); });
  const idleClosed = new Promise((resolve) => idle.on('close', () => resolve(Date.now() - t0)));
  const ms = await Promise.race([idleClosed, sleep(8000).then(() => 'still open after 8 s')]);
  assert.equal(typeof ms, 'number', String(ms));
  assert.ok(ms >= 1500 && ms < 6000, `closed after ${ms} ms`);
  // the unmodified client still connects (its CONNECT is small and quick)
  const s = io(BASE + '/events', { auth: { token: staff }, transports: ['websocket'], reconnection: false, forceNew: true });
  await new Promise((resolve, reject) => { s.on('connect', resolve); s.on('connect_error', reject); });
  s.close();
});

// ---- 4. a token whose exp is far away ------------------------------------------------------------

test('a token with a huge exp neither hangs nor breaks the service thread', async () => {
  // exp as large as JSON integers go (INT64_MAX) and past lws' timer range
  const far = (exp) => {
    const b64 = (s) => Buffer.from(s).toString('base64url');
    const crypto = require('node:crypto');
    const head = `${b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64(`{"sub":"31","userId":31,"role":"staff","iat":${now()},"exp":${exp}}`)}`;
    return head + '.' + crypto.createHmac('sha256', env.JWT_SECRET).update(head).digest('base64url');
  };
  for (const exp of ['9300000000000', '9223372036854775807']) {
    const c = await connect({ token: far(exp) });
    assert.equal(await healthFast(), 200, `health with exp ${exp}`);
    const other = await connect({ token: staff });
    // refresh to an even larger one on the live connection
    c.send('refresh_token', { token: far('9223372036854775807') });
    await c.event('token_refreshed', 5000);
    assert.equal(await healthFast(), 200);
    // Socket.IO too
    const s = io(BASE + '/events', { auth: { token: far(exp) }, transports: ['websocket'], reconnection: false, forceNew: true });
    await new Promise((resolve, reject) => { s.on('connect', resolve); s.on('connect_error', reject); });
    assert.equal(await healthFast(), 200);
    // both still get events
    const title = 'far-' + uniq();
    assert.equal((await rest('POST', '/websocket/broadcast', { token: admin, body: { title, message: 'x' } })).status, 202);
    notified += 1;
    await c.event('system_notification', 10000, (d) => d.data.title === title);
    await other.event('system_notification', 10000, (d) => d.data.title === title);
    s.close();
    c.close();
    other.close();
  }
});

// ---- 5. the read-back budget across resumes ----------------------------------------------------

function plain(port, t) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/events`, { headers: { Authorization: 'Bearer ' + t } });
    const frames = [];
    const waiters = [];
    ws.on('message', (m) => {
      const f = JSON.parse(m.toString());
      frames.push(f);
      for (const w of waiters.splice(0)) if (!w(f)) waiters.push(w);
    });
    ws.on('error', reject);
    const c = {
      ws, frames,
      send: (event, data) => ws.send(JSON.stringify({ event, data })),
      next: (name, ms = 30000) => new Promise((res, rej) => {
        const seen = frames.find((f) => f.event === name);
        if (seen) return res(seen);
        const t = setTimeout(() => rej(new Error('timed out waiting for ' + name)), ms);
        waiters.push((f) => (f.event === name ? (clearTimeout(t), res(f), true) : false));
      }),
    };
    c.next('connected', 5000).then(() => resolve(c), reject);
  });
}

test('resumes reading Kafka share resume.read_budget_mb: they wait their turn, one too large is not recovered', async () => {
  const B = `http://127.0.0.1:${PORT_B}`;
  const t = tok('staff', 300);
  const c0 = await plain(PORT_B, t);
  const p0 = (await c0.next('connected')).data.positions;
  c0.ws.close();
  await broadcasts(2000, 300);
  notified += 2000;
  await consumed(notified, B);
  const c2 = await plain(PORT_B, t);
  const p2 = (await c2.next('connected')).data.positions;
  c2.ws.close();
  await broadcasts(1000, 300);
  notified += 1000;
  await consumed(notified, B);
  // six clients resume the last 1000 (about 0.5 MiB each: two fit in 1 MiB)
  const clients = await Promise.all(Array.from({ length: 6 }, () => plain(PORT_B, t)));
  const big = await plain(PORT_B, t);
  for (const c of clients) c.send('resume', { since: p2 });
  big.send('resume', { since: p0 });
  const answers = await Promise.all(clients.map((c) => c.next('resumed', 60000)));
  for (const a of answers) assert.deepEqual(a.data, { recovered: true, replayed: 1000 });
  for (const c of clients) assert.equal(c.frames.filter((f) => f.event === 'system_notification').length, 1000);
  const bigAnswer = await big.next('resumed', 30000);
  assert.equal(bigAnswer.data.recovered, false, 'a gap larger than the whole budget is not recovered');
  const m = async (n) => {
    const r = await fetch(B + '/metrics');
    const line = (await r.text()).split('\n').find((l) => l.startsWith(n + ' '));
    return Number(line.split(' ').pop());
  };
  assert.equal(await m('oms_resume_read_budget_bytes'), 1048576);
  assert.ok((await m('oms_resume_budget_waits_total')) >= 1, 'some resumes waited for the budget');
  const peak = await m('oms_resume_read_bytes_peak');
  assert.ok(peak > 0 && peak <= 1048576, `peak ${peak} within the budget`);
  assert.equal(await m('oms_resume_read_bytes'), 0, 'everything read back was handed over');
  assert.equal(await m('oms_resumes_waiting'), 0);
  for (const c of [...clients, big]) c.ws.close();
});
