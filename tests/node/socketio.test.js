// omsd's Socket.IO v4 dialect (/socket.io/, namespace /events), end to end:
// the unmodified socket.io-client 4 as a frontend uses it, plus raw Engine.IO
// traffic for what a well-behaved client never sends. The server runs with
// OMS_SIO_PING_INTERVAL_MS / OMS_SIO_PING_TIMEOUT_MS / OMS_SIO_CONNECT_TIMEOUT_MS
// from the environment (see 0700-socketio.sh).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { io } = require('socket.io-client');
const { env, PORT, BASE, tok, token, connect, rest, sleep, metric } = require('./lib');

const PING_INTERVAL = Number(env.OMS_SIO_PING_INTERVAL_MS);
const PING_TIMEOUT = Number(env.OMS_SIO_PING_TIMEOUT_MS);
const CONNECT_TIMEOUT = Number(env.OMS_SIO_CONNECT_TIMEOUT_MS);
const EIO_WS = `ws://127.0.0.1:${PORT}/socket.io/?EIO=4&transport=websocket`;
const EIO_POLL = `${BASE}/socket.io/?EIO=4&transport=polling`;

const admin = tok('admin', 100);
const staff = tok('staff', 200);
const cust1 = tok('customer', 1);
const cust2 = tok('customer', 2);
const service = token({ sub: 'svc', role: 'service' });
const uniq = () => Math.random().toString(36).slice(2, 10);

// ---- socket.io-client, the way a frontend uses it ----------------------------------

// Resolves with the socket after `connected` (the server's hello), rejects
// with the connect_error. Every server event is kept in s.got.
function sio(t, { transports, nsp = '/events', timeout = 5000, ...opts } = {}) {
  return new Promise((resolve, reject) => {
    const s = io(BASE + nsp, { auth: t === undefined ? undefined : { token: t }, transports, reconnection: false, forceNew: true, timeout, ...opts });
    s.got = [];
    s.waiters = [];
    s.onAny((event, ...args) => {
      const f = { event, data: args[0], args };
      s.got.push(f);
      s.waiters = s.waiters.filter((w) => !(w.pred(f) && (w.resolve(f), true)));
    });
    s.next = (event, pred = () => true, ms = 5000) => {
      const seen = s.got.find((f) => f.event === event && pred(f.data));
      if (seen) return Promise.resolve(seen);
      return new Promise((res, rej) => {
        const t2 = setTimeout(() => rej(new Error(`timed out waiting for ${event}`)), ms);
        s.waiters.push({ pred: (f) => f.event === event && pred(f.data), resolve: (f) => { clearTimeout(t2); res(f); } });
      });
    };
    s.all = (event) => s.got.filter((f) => f.event === event);
    s.ack = (event, data, ms = 5000) => (data === undefined ? s.timeout(ms).emitWithAck(event) : s.timeout(ms).emitWithAck(event, data));
    s.once('connect_error', (e) => { s.close(); reject(e); });
    s.next('connected', () => true, timeout).then(() => resolve(s), (e) => { s.close(); reject(e); });
  });
}

const orderFor = async (userId, id = 'o-' + uniq()) => {
  const r = await rest('POST', '/websocket/notifications/order-created', {
    token: admin, body: { orderId: id, aliasId: 'A-' + id, userId, totalAmount: 10.5, status: 'created' },
  });
  assert.equal(r.status, 202, r.text);
  return id;
};
const broadcast = async (title = 'b-' + uniq(), extra = {}) => {
  const r = await rest('POST', '/websocket/broadcast', { token: admin, body: { type: 'system', title, message: 'm', ...extra } });
  assert.equal(r.status, 202, r.text);
  return { title, eventId: r.json.eventId };
};

// ---- raw Engine.IO over WebSocket and polling ------------------------------------------

class RawWs {
  constructor(url = EIO_WS, headers = {}) {
    this.ws = new WebSocket(url, { headers });
    this.msgs = [];
    this.waiters = [];
    this.closed = null;
    this.autoPong = true;
    this.opened = new Promise((resolve, reject) => {
      this.ws.on('open', resolve);
      this.ws.on('error', reject);
      this.ws.on('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => { const e = new Error('refused ' + res.statusCode); e.status = res.statusCode; e.body = body; reject(e); });
      });
    });
    this.ws.on('message', (m, binary) => {
      const s = binary ? m : m.toString();
      if (s === '2' && this.autoPong) this.ws.send('3');
      this.msgs.push(s);
      this.waiters = this.waiters.filter((w) => !(w.pred(s) && (w.resolve(s), true)));
    });
    this.closedP = new Promise((resolve) => this.ws.on('close', (code, reason) => { this.closed = { code, reason: reason.toString() }; resolve(this.closed); }));
  }
  next(pred, ms = 5000) {
    const p = typeof pred === 'string' ? (s) => s.startsWith(pred) : pred;
    const seen = this.msgs.find(p);
    if (seen !== undefined) { this.msgs.splice(this.msgs.indexOf(seen), 1); return Promise.resolve(seen); }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${pred}; have ${JSON.stringify(this.msgs).slice(0, 300)}`)), ms);
      this.waiters.push({ pred: p, resolve: (s) => { clearTimeout(t); this.msgs.splice(this.msgs.indexOf(s), 1); resolve(s); } });
    });
  }
  send(s) { this.ws.send(s); }
  waitClose(ms = 5000) {
    return Promise.race([this.closedP, sleep(ms).then(() => { throw new Error('timed out waiting for close'); })]);
  }
  close() { if (!this.closed) this.ws.close(); }
}

// An authenticated raw WebSocket session on /events.
async function rawJoined(t = staff) {
  const r = new RawWs();
  await r.opened;
  const open = JSON.parse((await r.next('0')).slice(1));
  r.send(`40/events,${JSON.stringify({ token: t })}`);
  await r.next('40/events,');
  await r.next('42/events,["connected"');
  r.sid = open.sid;
  return r;
}

async function poll(method, query, body, headers = {}) {
  const r = await fetch(`${EIO_POLL}${query}`, { method, body, headers: body !== undefined ? { 'Content-Type': 'text/plain;charset=UTF-8', ...headers } : headers });
  return { status: r.status, text: await r.text(), headers: r.headers };
}
async function handshake() {
  const r = await poll('GET', '&t=' + uniq());
  assert.equal(r.status, 200, r.text);
  assert.equal(r.text[0], '0');
  return JSON.parse(r.text.slice(1));
}

// ---- tests -------------------------------------------------------------------------------

test('websocket-only: connect with auth, connected hello, the EIO handshake as specified', async () => {
  const s = await sio(cust1, { transports: ['websocket'] });
  assert.equal(s.io.engine.transport.name, 'websocket');
  assert.ok(s.id && s.id !== s.io.engine.id, 'the namespace sid differs from the EIO sid');
  assert.ok(s.io.engine.id.length >= 20);
  const hello = s.all('connected')[0].data;
  assert.equal(hello.userId, 1);
  assert.equal(hello.role, 'customer');
  assert.match(hello.timestamp, /Z$/);
  assert.equal(hello.positions.length, 6);
  s.close();

  const r = new RawWs();
  await r.opened;
  const open = JSON.parse((await r.next('0')).slice(1));
  assert.deepEqual(Object.keys(open).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
  assert.deepEqual(open.upgrades, []);
  assert.equal(open.pingInterval, PING_INTERVAL);
  assert.equal(open.pingTimeout, PING_TIMEOUT);
  assert.equal(open.maxPayload, 1048576);
  assert.match(open.sid, /^[A-Za-z0-9_-]{20,}$/);
  r.close();
});

test('polling first, then the upgrade to WebSocket; a polling-only client gets events too', async () => {
  const s = io(BASE + '/events', { auth: { token: staff }, reconnection: false, forceNew: true });
  const first = await new Promise((resolve) => s.io.on('open', () => resolve(s.io.engine.transport.name)));
  assert.equal(first, 'polling');
  const upgraded = new Promise((resolve) => s.io.engine.on('upgrade', (t) => resolve(t.name)));
  await new Promise((resolve, reject) => { s.on('connect', resolve); s.on('connect_error', reject); });
  assert.equal(await upgraded, 'websocket');
  const a = await s.timeout(5000).emitWithAck('ping');
  assert.match(a.timestamp, /Z$/);
  s.close();

  const p = await sio(staff, { transports: ['polling'] });
  assert.equal(p.io.engine.transport.name, 'polling');
  await p.ack('subscribe_to_orders');
  const ids = [await orderFor(5), await orderFor(6), await orderFor(7)];
  for (const id of ids) await p.next('order_update', (d) => d.data.orderId === id);
  assert.equal(p.io.engine.transport.name, 'polling');
  p.close();
});

test('refused CONNECT surfaces as connect_error with the server\'s message', async () => {
  const cases = {
    'no token': [undefined, /token is required/, 'unauthorized'],
    'bad signature': [tok('admin', 1, { secret: 'another-secret-another-secret-123456' }), /./, 'unauthorized'],
    expired: [tok('admin', 1, { ttl: -60 }), /expired/, 'token_expired'],
    'alg none': [tok('admin', 1, { alg: 'none' }), /./, 'unauthorized'],
    garbage: ['abc.def.ghi', /./, 'unauthorized'],
  };
  const failuresBefore = await metric('oms_auth_failures_total');
  for (const [name, [t, msg, code]] of Object.entries(cases)) {
    for (const transports of [['websocket'], ['polling']]) {
      const e = await sio(t, { transports }).then(() => null, (x) => x);
      assert.ok(e, `${name} ${transports}: refused`);
      assert.match(e.message, msg, name);
      assert.notEqual(e.message, 'timeout', name);
      assert.equal(e.data && e.data.code, code, name);
    }
  }
  assert.ok((await metric('oms_auth_failures_total')) >= failuresBefore + 10);
  // another namespace: refused cleanly
  for (const nsp of ['/', '/nope']) {
    const e = await sio(admin, { nsp, transports: ['websocket'] }).then(() => null, (x) => x);
    assert.equal(e && e.message, 'Invalid namespace', nsp);
  }
});

test('roles: customers see only their orders, staff all, inventory only staff (Socket.IO clients)', async () => {
  const c1 = await sio(cust1, { transports: ['websocket'] });
  const c2 = await sio(cust2, { transports: ['polling'] });
  const st = await sio(staff);
  const sv = await sio(service, { transports: ['websocket'] });
  for (const c of [c1, c2, st]) c.emit('subscribe_to_orders');
  for (const c of [c1, c2, st]) await c.next('subscription_confirmed');
  assert.equal(c1.all('subscription_confirmed')[0].data.type, 'order');
  assert.equal(c1.all('subscription_confirmed')[0].data.positions.length, 6);
  c1.emit('subscribe_to_inventory');
  assert.equal((await c1.next('error')).data.code, 'forbidden');
  const inv = await st.ack('subscribe_to_inventory');
  assert.equal(inv.type, 'inventory');
  sv.emit('subscribe_to_orders');
  assert.equal((await sv.next('error')).data.code, 'forbidden');

  const o1 = await orderFor(1);
  const o2 = await orderFor(2);
  const ia = await rest('POST', '/websocket/notifications/inventory-alert', {
    token: staff, body: { productId: 101, productName: 'Test Product', currentQuantity: 5, threshold: 10, alertType: 'low_stock' },
  });
  assert.equal(ia.status, 202, ia.text);
  const note = await rest('POST', '/websocket/broadcast', { token: admin, body: { type: 'user', userId: 1, title: 'for one', message: 'hi' } });
  assert.equal(note.status, 202, note.text);
  const orderId = (id) => (d) => d.data.orderId === id;
  await c1.next('order_update', orderId(o1));
  await c2.next('order_update', orderId(o2));
  await st.next('order_update', orderId(o1));
  await st.next('order_update', orderId(o2));
  await st.next('inventory_update');
  await c1.next('user_notification');
  const m = await broadcast();
  for (const c of [c1, c2, st]) await c.next('system_notification', (d) => d.data.title === m.title);
  await sleep(300);
  assert.deepEqual(sv.got.map((f) => f.event), ['connected', 'error'], 'service tokens receive nothing');

  const orders = (c) => c.all('order_update').map((f) => f.data.data.orderId);
  assert.deepEqual(orders(c1), [o1]);
  assert.deepEqual(orders(c2), [o2]);
  assert.deepEqual(orders(st).sort(), [o1, o2].sort());
  assert.equal(c1.all('inventory_update').length, 0);
  assert.equal(c2.all('inventory_update').length, 0);
  assert.equal(st.all('inventory_update').length, 1);
  assert.equal(st.all('inventory_update')[0].data.data.quantity, 5);
  assert.equal(c1.all('user_notification').length, 1);
  assert.equal(c2.all('user_notification').length, 0);
  assert.equal(st.all('user_notification').length, 0);
  const rt = c1.all('order_update')[0];
  assert.equal(rt.args.length, 2, 'two arguments: the RealTimeEvent, then the offset (recovery)');
  assert.match(rt.args[1], /^[0-3][A-Za-z0-9_-]{20,}$/, 'the offset: class digit and a base64url token');
  assert.equal(rt.data.type, 'order_status');
  assert.equal(rt.data.userId, 1);
  assert.match(rt.data.id, new RegExp(`^${env.TOPIC_ORDERS.replace(/\./g, '\\.')}:\\d+:\\d+$`));

  // unsubscribe stops them
  assert.equal((await st.ack('unsubscribe', { type: 'order' })).type, 'order');
  const o3 = await orderFor(1);
  await c1.next('order_update', orderId(o3));
  await sleep(300);
  assert.equal(orders(st).length, 2);
  for (const c of [c1, c2, st, sv]) c.close();
});

test('resume over Socket.IO (polling and WebSocket): the missed events, then the ack', async () => {
  for (const transports of [['polling'], ['websocket']]) {
    const a = await sio(cust1, { transports });
    const sub = await a.ack('subscribe_to_orders');
    const since = sub.positions; // "seen everything up to here"
    a.close();
    const missed = [];
    for (let i = 0; i < 5; i++) missed.push(await orderFor(1));
    await orderFor(2); // not customer 1's
    await sleep(300);
    const b = await sio(cust1, { transports });
    await b.ack('subscribe_to_orders');
    const r = await b.ack('resume', { since }, 10000);
    assert.deepEqual(r, { recovered: true, replayed: 5 }, transports[0]);
    // each order on its own partition (keyed by orderId): order holds per partition
    const got = b.all('order_update').map((f) => f.data.data.orderId);
    assert.deepEqual([...got].sort(), [...missed].sort(), `${transports[0]}: the missed orders, before the ack`);
    b.close();
  }
});

test('acks: the answer comes as the ack argument, not as a separate event', async () => {
  const s = await sio(cust1, { transports: ['websocket'] });
  const p = await s.ack('ping');
  assert.match(p.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const sub = await s.ack('subscribe_to_orders');
  assert.equal(sub.type, 'order');
  const forbidden = await s.ack('subscribe_to_inventory');
  assert.equal(forbidden.code, 'forbidden');
  const unknown = await s.ack('frobnicate', { x: 1 });
  assert.equal(unknown.code, 'unknown_event');
  assert.match(unknown.message, /frobnicate/);
  const bad = await s.ack('unsubscribe', { type: 'nonsense' });
  assert.equal(bad.code, 'bad_request');
  const res = await s.ack('resume', { since: [] });
  assert.deepEqual(res, { recovered: true, replayed: 0 }, 'nothing named, nothing missed');
  const lost = await s.ack('resume', { since: ['no-such-topic.orders:0:5'] });
  assert.equal(lost.recovered, false);
  const refreshed = await s.ack('refresh_token', { token: tok('customer', 1, { ttl: 600 }) });
  assert.match(refreshed.expiresAt, /Z$/);
  await sleep(200);
  for (const name of ['pong', 'subscription_confirmed', 'error', 'resumed', 'token_refreshed', 'unsubscribed']) {
    assert.equal(s.all(name).length, 0, `${name} came as an event`);
  }
  // without an ack the answers are events, as in the plain dialect
  s.emit('ping');
  assert.match((await s.next('pong')).data.timestamp, /Z$/);
  s.emit('frobnicate');
  assert.equal((await s.next('error')).data.code, 'unknown_event');
  s.close();

  // on the wire (E3): 42/events,17["ping"] -> 43/events,17[{timestamp}]
  const r = await rawJoined(cust1);
  r.send('42/events,17["ping"]');
  const a = await r.next('43/events,17[');
  assert.match(JSON.parse(a.slice('43/events,17'.length))[0].timestamp, /Z$/);
  r.send('42/events,18["subscribe_to_orders"]');
  assert.equal(JSON.parse((await r.next('43/events,18[')).slice(12))[0].type, 'order');
  r.close();
});

test('a broadcast reaches plain-WebSocket and Socket.IO clients alike, from the same event', async () => {
  const plain = await connect({ token: cust1 });
  const ws = await sio(cust2, { transports: ['websocket'] });
  const pl = await sio(staff, { transports: ['polling'] });
  const up = await sio(admin);
  const deliveredBefore = await metric('oms_events_delivered_total');
  const b = await broadcast('all-' + uniq(), { data: { window: '2h' } });
  const got = [
    (await plain.event('system_notification', 5000, (d) => d.data.title === b.title)).data,
    (await ws.next('system_notification', (d) => d.data.title === b.title)).data,
    (await pl.next('system_notification', (d) => d.data.title === b.title)).data,
    (await up.next('system_notification', (d) => d.data.title === b.title)).data,
  ];
  for (const g of got) {
    assert.deepEqual(g, got[0]);
    assert.equal(g.type, 'system_notification');
    assert.deepEqual(g.data.data, { window: '2h' });
    assert.equal(g.data.eventId, b.eventId);
  }
  await sleep(100);
  assert.ok((await metric('oms_events_delivered_total')) >= deliveredBefore + 4);
  plain.close();
  for (const s of [ws, pl, up]) s.close();
});

test('presence and stats include Socket.IO users', async () => {
  const s = await sio(tok('customer', 4242), { transports: ['websocket'] });
  const p = await sio(tok('customer', 4242), { transports: ['polling'] });
  const u = await rest('GET', '/websocket/users/4242/online', { token: admin });
  assert.deepEqual([u.json.online, u.json.connections], [true, 2]);
  const on = await rest('GET', '/websocket/users/online', { token: admin });
  assert.ok(on.json.users.some((x) => x.userId === 4242 && x.connections === 2));
  const st = await rest('GET', '/websocket/stats', { token: staff });
  assert.ok(st.json.connections >= 2);
  assert.ok((await metric('oms_connections')) >= 2);
  s.close();
  p.close();
  await sleep(300);
  const gone = await rest('GET', '/websocket/users/4242/online', { token: admin });
  assert.deepEqual([gone.json.online, gone.json.connections], [false, 0]);
});

test('heartbeat: a live client stays connected on pings alone; a silent one is closed', async () => {
  const s = await sio(cust1, { transports: ['websocket'] });
  const p = await sio(cust1, { transports: ['polling'] });
  let pings = 0;
  s.io.engine.on('ping', () => pings++);
  await sleep(3 * PING_INTERVAL + PING_TIMEOUT);
  assert.ok(pings >= 2, `pings seen: ${pings}`);
  assert.ok(s.connected && p.connected);
  assert.ok((await s.ack('ping')).timestamp);
  assert.ok((await p.ack('ping')).timestamp);
  s.close();
  p.close();

  // WebSocket: never answers the ping
  const r = new RawWs();
  r.autoPong = false;
  await r.opened;
  await r.next('0');
  const t0 = Date.now();
  await r.next((m) => m === '2', PING_INTERVAL + 2000);
  await r.waitClose(PING_TIMEOUT + 2000);
  assert.ok(Date.now() - t0 >= PING_TIMEOUT - 50, 'closed after the ping timeout, not before');

  // polling: a session whose client vanished is reaped
  const h = await handshake();
  await sleep(PING_INTERVAL + PING_TIMEOUT + 500);
  const late = await poll('GET', '&sid=' + h.sid);
  assert.equal(late.status, 400);
  assert.deepEqual(JSON.parse(late.text), { code: 1, message: 'Session ID unknown' });
});

test('an EIO connection that never joins a namespace is closed after the connect timeout', async () => {
  const r = new RawWs();
  await r.opened;
  await r.next('0');
  const closed = await r.waitClose(CONNECT_TIMEOUT + 2000);
  assert.ok(closed.code >= 1000);
});

test('raw WebSocket exchanges as in the protocol brief (E1, E5, E8)', async () => {
  const r = new RawWs();
  await r.opened;
  await r.next('0');
  r.send('40/nope,');
  assert.equal(await r.next('44/nope,'), '44/nope,{"message":"Invalid namespace"}');
  r.send('40/events,{"token":"bad"}');
  const refused = JSON.parse((await r.next('44/events,')).slice(10));
  assert.equal(refused.data.code, 'unauthorized');
  assert.equal(typeof refused.message, 'string');
  r.send('40/events,');
  assert.match(await r.next('44/events,'), /token is required/);
  r.send(`40/events,${JSON.stringify({ token: cust1 })}`);
  const ok = JSON.parse((await r.next('40/events,')).slice(10));
  assert.match(ok.sid, /^[A-Za-z0-9_-]{20,}$/);
  assert.deepEqual(Object.keys(ok), ['sid', 'pid'], 'pid: connection-state recovery (0710)');
  assert.match(ok.pid, /^[A-Za-z0-9_-]{28}$/);
  assert.notEqual(ok.pid, ok.sid);
  const hello = JSON.parse((await r.next('42/events,["connected"')).slice(10));
  assert.equal(hello[1].userId, 1);
  // leave the namespace: no reply, the connection stays; join again
  r.send('41/events,');
  await sleep(200);
  assert.equal(r.closed, null);
  r.send(`40/events,${JSON.stringify({ token: cust1 })}`);
  const again = JSON.parse((await r.next('40/events,')).slice(10));
  assert.notEqual(again.sid, ok.sid);
  assert.notEqual(again.pid, ok.pid, 'after an explicit DISCONNECT, a new session: a new pid');
  // the namespace may run to the end of the packet
  r.send('41/events');
  r.send(`40/events,${JSON.stringify({ token: cust1 })}`);
  await r.next('40/events,');
  // EIO close
  r.send('1');
  await r.waitClose();

  // a client that keeps trying bad tokens is cut off after 10 refusals
  const k = new RawWs();
  await k.opened;
  await k.next('0');
  for (let i = 0; i < 11; i++) k.send('40/events,{"token":"bad"}');
  assert.equal((await k.waitClose(3000)).code, 1002);
  assert.equal(k.msgs.filter((m) => m.startsWith('44/events,')).length, 10);
});

test('malformed packets close only that session', async () => {
  const witness = await sio(staff, { transports: ['websocket'] });
  const witnessPoll = await sio(staff, { transports: ['polling'] });
  const garbage = [
    'x',                              // no EIO type
    '',                               // empty frame
    '9',                              // unknown EIO type
    '2',                              // a client ping (v3 style) is an error in v4
    '5',                              // upgrade outside a probe
    '0',                              // open from a client
    '4',                              // empty SIO packet
    '49/events,[]',                   // unknown SIO type
    '42/events,abc["ping"]',          // not an ack id, not JSON
    '42/events,["ping"',              // bad JSON
    '42/events,{"a":1}',              // EVENT payload not an array
    '42/events,[]',                   // empty event
    '42/events,["connect"]',          // reserved event name
    '42/events,["disconnect"]',
    '42/events,[{"x":1}]',            // event name not a string
    '40/events,"token"',              // CONNECT data not an object
    '40/events,5{"token":"x"}',       // ack id on CONNECT
    '44/events,{"message":"x"}',      // CONNECT_ERROR from a client
    '42/other,["ping"]',              // event on a namespace not joined
    '43/events,[]',                   // ack without an id
    '41/events,{}',                   // DISCONNECT with data
    '42/events,9999999999999999["ping"]', // ack id too long
    '4\u0001/events,["ping"]',        // control byte where the namespace starts
    '42/ev\u0001ents,["ping"]',       // control byte in the namespace
    '451-/events,["ping",{"_placeholder":true,"num":0}]\u0000', // trailing junk after the JSON
    '4999-/events,["x"]',             // too many attachments
    '45/events,["x"]',                // binary event without the count
  ];
  for (const g of garbage) {
    const r = await rawJoined(staff);
    r.send(g);
    const closed = await r.waitClose(3000).catch(() => null);
    assert.ok(closed, `closed after ${JSON.stringify(g)}`);
    assert.equal(closed.code, 1002, JSON.stringify(g));
  }
  // a binary frame nobody announced
  const rb = await rawJoined(staff);
  rb.send(Buffer.from([1, 2, 3]));
  assert.equal((await rb.waitClose(3000)).code, 1002);
  // a message over maxPayload
  const big = await rawJoined(staff);
  big.send('42/events,["ping","' + 'x'.repeat(1048577) + '"]');
  assert.equal((await big.waitClose(3000)).code, 1009);
  // a binary event with its attachment is consumed; the session stays in step
  const bin = await rawJoined(staff);
  bin.send('451-/events,7["ping",{"_placeholder":true,"num":0}]');
  bin.send(Buffer.from([0xde, 0xad]));
  assert.match(await bin.next('43/events,7['), /timestamp/);
  bin.send('43/events,0[]'); // an ack nobody asked for: ignored
  bin.send('42/events,8["ping"]');
  await bin.next('43/events,8[');
  bin.close();
  // before joining: an event without CONNECT closes too
  const early = new RawWs();
  await early.opened;
  await early.next('0');
  early.send('42/events,["ping"]');
  assert.equal((await early.waitClose(3000)).code, 1002);

  // polling garbage
  for (const body of ['x', '4zzz', '42/events,["ping"', '2', '']) {
    const h = await handshake();
    const r = await poll('POST', '&sid=' + h.sid, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    const after = await poll('GET', '&sid=' + h.sid);
    assert.equal(after.status, 400, JSON.stringify(body));
    assert.equal(JSON.parse(after.text).code, 1);
  }
  const h = await handshake();
  const bigPost = await poll('POST', '&sid=' + h.sid, '4' + 'x'.repeat(1048577));
  assert.equal(bigPost.status, 413);
  const h2 = await handshake();
  const octet = await poll('POST', '&sid=' + h2.sid, '40/events,', { 'Content-Type': 'application/octet-stream' });
  assert.equal(octet.status, 400);
  // two GETs at once: the second is refused and the session closed
  const h3 = await handshake();
  const held = poll('GET', '&sid=' + h3.sid);
  await sleep(100);
  const second = await poll('GET', '&sid=' + h3.sid);
  assert.equal(second.status, 400);
  assert.equal((await held).text, '1');
  // bad handshakes
  const q = async (query, method = 'GET') => {
    const r = await fetch(`${BASE}/socket.io/?${query}`, { method, body: method === 'POST' ? 'x' : undefined });
    return [r.status, JSON.parse(await r.text()).code];
  };
  assert.deepEqual(await q('EIO=4&transport=carrier-pigeon'), [400, 0]);
  assert.deepEqual(await q('EIO=3&transport=polling'), [400, 5]);
  assert.deepEqual(await q('transport=polling'), [400, 5]);
  assert.deepEqual(await q('EIO=4&transport=polling', 'POST'), [400, 2]);
  assert.deepEqual(await q('EIO=4&transport=polling&sid=' + 'A'.repeat(500)), [400, 1]);
  assert.deepEqual(await q('EIO=4&transport=polling&sid=' + encodeURIComponent('"<>\\\u00e9')), [400, 1]);
  assert.deepEqual(await q('EIO=4&transport=websocket'), [400, 3]);
  // WebSocket upgrades that fail the checks get HTTP 400
  for (const url of [EIO_WS.replace('EIO=4', 'EIO=3'), EIO_WS + '&sid=unknown', EIO_WS.replace('websocket', 'polling')]) {
    const r = new RawWs(url);
    const e = await r.opened.then(() => null, (x) => x);
    assert.equal(e && e.status, 400, url);
  }

  // the witnesses never noticed
  assert.ok(witness.connected && witnessPoll.connected);
  assert.ok((await witness.ack('ping')).timestamp);
  assert.ok((await witnessPoll.ack('ping')).timestamp);
  const b = await broadcast();
  await witness.next('system_notification', (d) => d.data.title === b.title);
  await witnessPoll.next('system_notification', (d) => d.data.title === b.title);
  assert.equal((await rest('GET', '/websocket/health')).status, 200);
  witness.close();
  witnessPoll.close();
});

test('polling exchange and upgrade on the wire (E7)', async () => {
  const h = await handshake();
  assert.deepEqual(h.upgrades, ['websocket']);
  const q = '&sid=' + h.sid;
  assert.equal((await poll('POST', q, `40/events,${JSON.stringify({ token: cust1 })}`)).text, 'ok');
  const g1 = await poll('GET', q);
  assert.equal(g1.status, 200);
  assert.match(g1.headers.get('content-type'), /^text\/plain/);
  const pk = g1.text.split('\x1e');
  assert.match(pk[0], /^40\/events,\{"sid":"[A-Za-z0-9_-]+","pid":"[A-Za-z0-9_-]{28}"\}$/);
  assert.match(pk[1], /^42\/events,\["connected",/);
  const post = await poll('POST', q, '42/events,3["ping"]\x1e42/events,4["ping"]');
  assert.equal(post.text, 'ok');
  assert.match(post.headers.get('content-type'), /^text\/html/);
  const g2 = await poll('GET', q);
  const acks = g2.text.split('\x1e');
  assert.equal(acks.length, 2);
  assert.match(acks[0], /^43\/events,3\[\{"timestamp":/);
  assert.match(acks[1], /^43\/events,4\[\{"timestamp":/);
  // a held GET, then the upgrade
  const held = poll('GET', q);
  await sleep(100);
  const ws = new RawWs(`${EIO_WS}&sid=${h.sid}`);
  await ws.opened;
  // a second WebSocket for the same session is refused
  const dup = new RawWs(`${EIO_WS}&sid=${h.sid}`);
  assert.equal((await dup.opened.then(() => null, (x) => x)).status, 400);
  ws.send('2probe');
  assert.equal(await ws.next('3'), '3probe');
  assert.equal((await held).text, '6');
  ws.send('5');
  ws.send('42/events,9["ping"]');
  await ws.next('43/events,9[');
  const after = await poll('GET', q);
  assert.equal(after.status, 400);
  assert.equal(JSON.parse(after.text).code, 3);
  // events now come over the WebSocket
  const b = await broadcast();
  await ws.next((m) => m.startsWith('42/events,["system_notification"') && m.includes(b.title));
  // EIO close over polling: the held GET gets a noop, the sid is gone
  const h2 = await handshake();
  const held2 = poll('GET', '&sid=' + h2.sid);
  await sleep(100);
  assert.equal((await poll('POST', '&sid=' + h2.sid, '1')).text, 'ok');
  assert.equal((await held2).text, '6');
  assert.equal((await poll('GET', '&sid=' + h2.sid)).status, 400);
  ws.close();
});

test('origin: foreign refused with 403, allowed and own origin get CORS headers', async () => {
  const foreign = await poll('GET', '', undefined, { Origin: 'http://evil.example' });
  assert.equal(foreign.status, 403);
  assert.deepEqual(JSON.parse(foreign.text), { code: 4, message: 'Forbidden' });
  const allowed = await poll('GET', '', undefined, { Origin: 'http://allowed.example' });
  assert.equal(allowed.status, 200);
  assert.equal(allowed.headers.get('access-control-allow-origin'), 'http://allowed.example');
  const own = await poll('GET', '', undefined, { Origin: `http://127.0.0.1:${PORT}` });
  assert.equal(own.status, 200);
  const pre = await fetch(EIO_POLL, { method: 'OPTIONS', headers: { Origin: 'http://allowed.example', 'Access-Control-Request-Method': 'POST' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), 'http://allowed.example');
  const r = new RawWs(EIO_WS, { Origin: 'http://evil.example' });
  assert.equal((await r.opened.then(() => null, (x) => x)).status, 403);
  const ok = new RawWs(EIO_WS, { Origin: 'http://allowed.example' });
  await ok.opened;
  await ok.next('0');
  ok.close();
  const s = await sio(cust1, { transports: ['websocket'], extraHeaders: { Origin: 'http://evil.example' } }).then(() => null, (x) => x);
  assert.ok(s instanceof Error);
});

test('token expiry: error token_expired, then a server disconnect', async () => {
  const s = await sio(tok('customer', 1, { ttl: 2 }), { transports: ['websocket'] });
  const refreshed = await sio(tok('customer', 1, { ttl: 2 }));
  assert.match((await refreshed.ack('refresh_token', { token: tok('customer', 1, { ttl: 600 }) })).expiresAt, /Z$/);
  // exp + the verification's 5 s leeway
  const reason = await Promise.race([new Promise((resolve) => s.on('disconnect', resolve)), sleep(12000).then(() => 'still connected')]);
  assert.equal(reason, 'io server disconnect');
  assert.equal(s.all('error')[0].data.code, 'token_expired');
  await sleep(1500);
  assert.ok(refreshed.connected);
  refreshed.close();
});

test('rate-limit abuse: rate_limited errors, then a server disconnect', async () => {
  const s = await sio(cust1, { transports: ['websocket'] });
  const gone = new Promise((resolve) => s.on('disconnect', resolve));
  for (let i = 0; i < 400 && s.connected; i++) s.emit('ping');
  assert.equal(await gone, 'io server disconnect');
  assert.ok(s.all('error').some((f) => f.data.code === 'rate_limited'));
});

test('SIGTERM: Socket.IO clients lose the transport and omsd exits', async () => {
  const s = await sio(admin, { transports: ['websocket'] });
  const p = await sio(admin, { transports: ['polling'] });
  const reasons = Promise.all([s, p].map((x) => new Promise((resolve) => x.on('disconnect', resolve))));
  process.kill(Number(env.OMSD_PID), 'SIGTERM');
  const [a, b] = await Promise.race([reasons, sleep(8000).then(() => ['timeout', 'timeout'])]);
  assert.equal(a, 'transport close');
  assert.match(b, /transport (close|error)/);
});
