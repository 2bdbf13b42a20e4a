// omsd with two service threads (server.threads: 2), run by 0985-threads.sh:
// connections land on both threads; every client gets every event it is
// entitled to exactly once; a Socket.IO polling session whose requests land
// on either thread works, and so does its upgrade; users online and the
// stats count every thread; SIGTERM (in the script) drains them all.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { io } = require('socket.io-client');
const { env, PORT, BASE, tok, connect, rest, sleep, metric } = require('./lib');

const admin = tok('admin', 1);
let n = 0;
const uniq = () => `${process.pid}-${++n}`;

// a request on a TCP connection of its own (agent: false): the kernel may
// give it to either thread
function req(method, path, body) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port: PORT, method, path, agent: false,
      headers: body !== undefined ? { 'Content-Type': 'text/plain;charset=UTF-8', 'Content-Length': Buffer.byteLength(body) } : {} },
    (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    r.on('error', reject);
    if (body !== undefined) r.write(body);
    r.end();
  });
}

test('two service threads are running', async () => {
  assert.equal(await metric('oms_service_threads'), 2);
});

test('200 plain clients over both threads get every entitled event exactly once', async () => {
  const staff = await Promise.all(Array.from({ length: 150 }, (_, i) => connect({ token: tok('staff', 1000 + i) })));
  const customers = await Promise.all(Array.from({ length: 50 }, (_, i) => connect({ token: tok('customer', 2000 + (i % 5)) })));
  for (const c of [...staff, ...customers]) c.send('subscribe_to_orders');
  await Promise.all([...staff, ...customers].map((c) => c.event('subscription_confirmed', 10000)));
  // 60 orders: 12 for each of users 2000..2004
  const ids = [];
  for (let i = 0; i < 60; i++) {
    const id = `thr-${uniq()}`;
    ids.push({ id, user: 2000 + (i % 5) });
    const r = await rest('POST', '/websocket/notifications/order-created', {
      token: admin, body: { orderId: id, aliasId: 'A-' + id, userId: 2000 + (i % 5), totalAmount: 1.5, status: 'created' },
    });
    assert.equal(r.status, 202, r.text);
  }
  const want = (c, user) => ids.filter((x) => user === undefined || x.user === user).map((x) => x.id);
  const deadline = Date.now() + 20000;
  const got = (c) => c.all('order_update').map((f) => f.data.data.orderId).filter((id) => id.startsWith('thr-'));
  for (;;) {
    const staffDone = staff.every((c) => got(c).length >= 60);
    const custDone = customers.every((c, i) => got(c).length >= 12 && i >= 0);
    if ((staffDone && custDone) || Date.now() > deadline) break;
    await sleep(100);
  }
  for (const c of staff) assert.deepEqual(got(c).sort(), want(c).sort(), 'a staff client got each order once');
  customers.forEach((c, i) => assert.deepEqual(got(c).sort(), want(c, 2000 + (i % 5)).sort(), 'a customer got its own orders once'));
  // the stats and users online count both threads
  const stats = (await rest('GET', '/websocket/stats', { token: admin })).json;
  assert.ok(stats.connections >= 200, `stats connections ${stats.connections}`);
  assert.ok(stats.subscriptions.orders >= 200, `subscribed ${stats.subscriptions.orders}`);
  const online = (await rest('GET', '/websocket/users/online', { token: admin })).json;
  const users = new Set((online.users || online).map((u) => u.userId));
  for (let i = 0; i < 150; i++) assert.ok(users.has(1000 + i), `user ${1000 + i} online`);
  for (const c of [...staff, ...customers]) c.close();
  await sleep(300);
  const after = (await rest('GET', '/websocket/stats', { token: admin })).json;
  assert.ok(after.connections < 10, `connections after closing: ${after.connections}`);
});

test('a polling session whose requests land on either thread works', async () => {
  const before = await metric('oms_sio_forwarded_total');
  const h = await req('GET', `/socket.io/?EIO=4&transport=polling&t=${uniq()}`);
  assert.equal(h.status, 200);
  const sid = JSON.parse(h.text.slice(1)).sid;
  const q = `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
  assert.equal((await req('POST', q, `40/events,${JSON.stringify({ token: tok('staff', 77) })}`)).text, 'ok');
  let text = '';
  while (!text.includes('["connected"')) text += (await req('GET', q)).text;
  // many pings, each on a new connection: their acks all come back, in order
  for (let i = 1; i <= 30; i++) {
    assert.equal((await req('POST', q, `42/events,${i}["ping"]`)).text, 'ok');
    let got = '';
    while (!got.includes(`43/events,${i}[`)) got += (await req('GET', q)).text;
  }
  // a held GET on one connection, an event arriving meanwhile
  const held = req('GET', q);
  await sleep(100);
  const title = 'poll-' + uniq();
  assert.equal((await rest('POST', '/websocket/broadcast', { token: admin, body: { title, message: 'x' } })).status, 202);
  let all = (await held).text;
  while (!all.includes(title)) all += (await req('GET', q)).text;
  assert.ok((await metric('oms_sio_forwarded_total')) > before, 'some requests reached the other thread and were handed over');
  assert.equal((await req('POST', q, '1')).text, 'ok');
});

test('socket.io-client upgrading from polling to WebSocket works whichever thread the WebSocket lands on', async () => {
  const movedBefore = await metric('oms_sio_moved_total');
  const clients = [];
  for (let i = 0; i < 12; i++) {
    const s = io(BASE + '/events', { auth: { token: tok('staff', 300 + i) }, reconnection: false, forceNew: true });
    s.got = [];
    s.onAny((event, data) => s.got.push({ event, data }));
    clients.push(s);
  }
  await Promise.all(clients.map((s) => new Promise((resolve, reject) => { s.on('connect', resolve); s.on('connect_error', reject); })));
  const deadline = Date.now() + 10000;
  while (clients.some((s) => s.io.engine.transport.name !== 'websocket') && Date.now() < deadline) await sleep(100);
  for (const s of clients) assert.equal(s.io.engine.transport.name, 'websocket', 'upgraded');
  const title = 'up-' + uniq();
  assert.equal((await rest('POST', '/websocket/broadcast', { token: admin, body: { title, message: 'x' } })).status, 202);
  const until = Date.now() + 10000;
  const seen = (s) => s.got.filter((f) => f.event === 'system_notification' && f.data.data.title === title).length;
  while (clients.some((s) => seen(s) < 1) && Date.now() < until) await sleep(50);
  for (const s of clients) assert.equal(seen(s), 1, 'the broadcast arrived once');
  // with two threads about half the upgrades land on the other one
  assert.ok((await metric('oms_sio_moved_total')) > movedBefore, 'some sessions moved to their WebSocket');
  for (const s of clients) s.close();
});
