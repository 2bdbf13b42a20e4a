'use strict';
// Abuse (issue #9 point 4), run by 0970-abuse.sh. A bystander client is
// connected through all of it and must keep receiving; omsd must answer
// each attack as documented and stay up.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const crypto = require('node:crypto');
const { execFile } = require('node:child_process');
const WebSocket = require('ws');
const { env, PORT, BASE, WS_URL, tok, token, connect, rest, sleep, producerAsync, metric } = require('./lib');

const b64 = (o) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
const claims = (extra = {}) => ({ sub: '5', userId: 5, role: 'staff', iat: now(), exp: now() + 600, ...extra });

let bystander;
let sent = 0;
// a broadcast the bystander must get (it is connected the whole time)
async function ping() {
  const title = `still-there-${++sent}`;
  const r = await rest('POST', '/websocket/broadcast', { token: tok('admin', 1), body: { title, message: 'x' } });
  assert.equal(r.status, 202);
  const f = await bystander.event('system_notification', 10000, (d) => d.data.title === title);
  assert.equal(f.data.data.title, title);
}

// raw TCP exchange: send, read until close or timeout
function raw(port, data, { ms = 30000, keepSending = false } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    s.on('connect', () => s.write(data));
    s.on('data', (d) => { got = Buffer.concat([got, d]); });
    const done = (why) => { clearTimeout(t); s.destroy(); resolve({ why, ms: Date.now() - t0, text: got.toString('latin1') }); };
    s.on('close', () => done('closed'));
    s.on('error', () => done('error'));
    const t = setTimeout(() => done('timeout'), ms);
    void keepSending;
  });
}

test.before(async () => {
  bystander = await connect({ token: tok('staff', 77) });
});
test.after(() => bystander.close());

test('HS256 token signed with the RS256 public key is refused (algorithm pinned)', async () => {
  const pub = fs.readFileSync(env.RS_PUB);
  const h = b64({ alg: 'HS256', typ: 'JWT' }), p = b64(claims());
  const forged = `${h}.${p}.${crypto.createHmac('sha256', pub).update(`${h}.${p}`).digest('base64url')}`;
  const url = `ws://127.0.0.1:${env.PORT_RS}/events`;
  const tryWs = (t) => new Promise((resolve) => {
    const ws = new WebSocket(url, { headers: { Authorization: 'Bearer ' + t } });
    ws.on('unexpected-response', (req, res) => { let b = ''; res.on('data', (d) => (b += d)); res.on('end', () => resolve({ status: res.statusCode, body: b })); });
    ws.on('open', () => { ws.close(); resolve({ status: 101 }); });
    ws.on('error', () => {});
  });
  const r = await tryWs(forged);
  assert.equal(r.status, 401);
  assert.match(JSON.parse(r.body).error.message, /alg|algorithm|RS256/i);
  // alg none, too
  const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`;
  assert.equal((await tryWs(none)).status, 401);
  // while a real RS256 token is accepted
  const key = fs.readFileSync(env.RS_KEY);
  const h2 = b64({ alg: 'RS256', typ: 'JWT' });
  const sig = crypto.sign('RSA-SHA256', Buffer.from(`${h2}.${p}`), key).toString('base64url');
  assert.equal((await tryWs(`${h2}.${p}.${sig}`)).status, 101);
  await ping();
});

test('an expired token: refused at the door; on a live connection, closed with 4401', async () => {
  await assert.rejects(connect({ token: token(claims({ exp: now() - 60 })) }), (e) => e.status === 401);
  const c = await connect({ token: token(claims({ exp: now() + 2 })) });
  const closed = await c.waitClose(15000);
  assert.equal(closed.code, 4401);
  await ping();
});

test('a foreign Origin is refused with 403', async () => {
  await assert.rejects(connect({ token: tok('staff', 5), origin: 'https://evil.example' }), (e) => e.status === 403 && e.body.error.code === 'forbidden_origin');
  await ping();
});

test('10,000 connections from one address: 1,000 allowed, the rest refused with 429 saying why', async () => {
  const before = await metric('oms_connections_refused_address_total');
  const ready = path.join(env.T, 'flood.ready');
  const { spawn } = require('node:child_process');
  const load = spawn(`${env.TOOLS}/oms-load`, ['--url', WS_URL, '--connections', '10000', '--idle', '--duration', '90',
    '--ramp-per-sec', '4000', '--max-pending', '512', '--ready-file', ready, '--json', '--first-user-id', '1000'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  load.stdout.on('data', (d) => (stdout += d));
  const exited = new Promise((r) => load.on('exit', r));
  for (let i = 0; i < 600 && !fs.existsSync(ready); i++) await sleep(100);
  assert.ok(fs.existsSync(ready), 'every connection settled (open or refused) within 60 s');
  await ping(); // the bystander is not disturbed while 1,000 are open
  load.kill('SIGINT');
  await exited;
  const j = JSON.parse(stdout);
  // the bystander holds one of the thousand
  assert.equal(j.connected, 999, JSON.stringify({ connected: j.connected, errors: j.errors }));
  const refused = Object.entries(j.errors).filter(([k]) => k.includes('429')).reduce((s, [, n]) => s + n, 0);
  assert.equal(refused, 10000 - 999);
  assert.equal(await metric('oms_connections_refused_address_total') - before, 10000 - 999);
  // what a refused client reads
  const r = await raw(PORT, `GET /events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${tok('staff', 5)}\r\n\r\n`, { ms: 5000 });
  // the flood's connections are gone by now: this one is let in
  assert.match(r.text, /^HTTP\/1\.1 101/);
  await ping();
});

test('the refusal names the limit', async () => {
  // fill up to the limit with plain ws clients, then one more
  const held = [];
  for (let i = 0; i < 999; i++) {
    held.push(new WebSocket(WS_URL, { headers: { Authorization: 'Bearer ' + tok('customer', 2000 + i) } }));
  }
  await Promise.all(held.map((w) => new Promise((r) => { w.on('open', r); w.on('error', r); })));
  await assert.rejects(connect({ token: tok('customer', 3) }), (e) => {
    assert.equal(e.status, 429);
    assert.equal(e.body.error.code, 'too_many_connections');
    assert.match(e.body.error.message, /at most 1000 \(server\.max_connections_per_address\)/);
    return true;
  });
  for (const w of held) w.terminate();
  await sleep(500);
  await ping();
});

test('a handshake that never completes is timed out', async () => {
  const r = await raw(PORT, 'GET /events HTTP/1.1\r\nHost: x\r\n', { ms: 40000 });
  assert.equal(r.why, 'closed');
  assert.ok(r.ms < 30000, `closed after ${r.ms} ms`);
  await ping();
});

test('headers over the limit: the connection is dropped, nothing else', async () => {
  const r = await raw(PORT, `GET /websocket/health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`, { ms: 10000 });
  assert.notEqual(r.why, 'timeout');
  assert.doesNotMatch(r.text, /"status":"ok"/);
  // a normal request on the next connection is answered
  assert.equal((await rest('GET', '/websocket/health')).status, 200);
  await ping();
});

test('a frame just over the limit and fragments past it: too_large, 1009', async () => {
  const ok = await connect({ token: tok('staff', 6) });
  // at the limit (65536 bytes): a bad_request (not JSON of ours) but the connection stays
  ok.ws.send(JSON.stringify({ event: 'ping', data: 'x'.repeat(65536 - 30) }).padEnd(65536, ' '));
  await ok.event('pong', 5000);
  ok.close();
  const c = await connect({ token: tok('staff', 7) });
  c.ws.send('x'.repeat(65537));
  assert.equal((await c.event('error', 5000)).data.code, 'too_large');
  assert.equal((await c.waitClose(5000)).code, 1009);
  // fragments: 5 x 16 KiB continuation frames of one message
  const f = await connect({ token: tok('staff', 8) });
  const part = Buffer.alloc(16384, 'y');
  for (let i = 0; i < 5; i++) f.ws.send(part, { fin: i === 4, binary: false });
  assert.equal((await f.event('error', 5000)).data.code, 'too_large');
  assert.equal((await f.waitClose(5000)).code, 1009);
  await ping();
});

test('../ in console paths never leaves the web root', async () => {
  for (const p of ['/../configs/omsd.yaml', '/%2e%2e/configs/omsd.yaml', '/web/../../etc/passwd', '/..%2f..%2fetc%2fpasswd']) {
    const r = await raw(PORT, `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, { ms: 5000 });
    assert.doesNotMatch(r.text, /root:|kafka:|^HTTP\/1\.1 200/m, p);
  }
  await ping();
});

test('a customer resuming with everyone\'s positions gets only its own events', async () => {
  const own = 41;
  const c = await connect({ token: tok('customer', own) });
  c.send('subscribe_to_orders');
  const conf = await c.event('subscription_confirmed', 5000);
  const since = conf.data.positions.map((p) => p.replace(/:\d+$/, ':-1')).concat(
    [0, 1, 2, 3, 4, 5].map((i) => `${env.TOPIC_INVENTORY}:${i}:-1`));
  await producerAsync(['simulate', '--count', '300', '--rate', 'max', '--duration', '0', '--users', '50', '--seed', '4']);
  await sleep(500);
  c.send('resume', { since });
  const r = await c.event('resumed', 10000);
  assert.equal(r.data.recovered, true);
  const evs = c.frames.filter((f) => f.data && f.data.type && f.data.id);
  assert.ok(evs.every((f) => f.data.userId === own || f.event === 'system_notification'), 'only its own');
  assert.ok(!evs.some((f) => f.event === 'inventory_update'));
  c.close();
  await ping();
});
