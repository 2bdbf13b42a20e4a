'use strict';
// Socket.IO connection-state recovery (DESIGN §3.6, issue #19) with the
// unmodified socket.io-client: `io(url, { auth: { token } })` (plus
// `transports` to pin one transport), behind a TCP relay that the test cuts
// (the client sees its connection die) and points at instance A or B
// (0710-socketio-recovery.sh). B keeps 20 events of history, so a recovery
// there reads Kafka back.
// The oracle: a plain-WebSocket witness that never disconnects receives
// every event live; a recovered client must end up with exactly the same
// events, each once, in order per partition.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const WebSocket = require('ws');
const { io } = require('socket.io-client');
const { env, tok, sleep, producerAsync, connect } = require('./lib');
const { parsePos, assertSameEvents, assertOrdered } = require('./events-assert');

const PORT_A = Number(env.PORT_A);
const PORT_B = Number(env.PORT_B);
const CUSTOMER = 7;

// ---- a TCP relay: a load balancer the test controls ------------------------------------

class Relay {
  constructor() {
    this.target = PORT_A;
    this.held = false;
    this.pending = [];
    this.pairs = new Set();
    this.server = net.createServer((c) => {
      c.on('error', () => {});
      if (this.held) {
        c.pause();
        this.pending.push(c);
      } else this.pipe(c);
    });
  }
  listen() {
    return new Promise((r) => this.server.listen(0, '127.0.0.1', () => { this.port = this.server.address().port; r(); }));
  }
  pipe(c) {
    const u = net.connect(this.target, '127.0.0.1');
    u.on('error', () => c.destroy());
    c.on('error', () => u.destroy());
    c.on('close', () => u.destroy());
    u.on('close', () => c.destroy());
    c.pipe(u);
    u.pipe(c);
    c.resume();
    const pair = [c, u];
    this.pairs.add(pair);
    c.on('close', () => this.pairs.delete(pair));
  }
  // cut every connection (RST, as a dead instance or network would) and
  // hold new ones until release
  cut() {
    this.held = true;
    for (const [c, u] of this.pairs) { c.resetAndDestroy(); u.destroy(); }
    this.pairs.clear();
  }
  release(target) {
    this.target = target;
    this.held = false;
    for (const c of this.pending.splice(0)) if (!c.destroyed) this.pipe(c);
  }
  close() {
    for (const [c, u] of this.pairs) { c.destroy(); u.destroy(); }
    this.server.close();
  }
}
const relay = new Relay();

// ---- clients ---------------------------------------------------------------------------

const isEvent = (d) => d && typeof d === 'object' && typeof d.id === 'string' && typeof d.type === 'string';

// the unmodified socket.io-client; keeps every event and each connect's `recovered`
function sclient(token, opts = {}) {
  const s = io(`http://127.0.0.1:${relay.port}/events`, { auth: { token }, forceNew: true, ...opts });
  s.got = [];
  s.frames = [];
  s.connects = [];
  s.on('connect', () => s.connects.push(s.recovered));
  s.onAny((event, ...args) => {
    s.frames.push({ event, args });
    if (isEvent(args[0])) s.got.push(args[0]);
  });
  return s;
}

async function until(cond, ms, what) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

// a plain WebSocket witness (instance A, never cut)
async function witness(token, subs) {
  const w = await connect({ token });
  for (const s of subs) {
    w.send(s === 'orders' ? 'subscribe_to_orders' : 'subscribe_to_inventory');
    await w.event('subscription_confirmed', 5000, (d) => d.type === (s === 'orders' ? 'order' : 'inventory'));
  }
  w.got = () => w.frames.filter((f) => isEvent(f.data)).map((f) => f.data);
  return w;
}

let seed = 500;
async function produce(n) {
  const rec = path.join(env.T, `produce-${seed}.jsonl`);
  await producerAsync(['simulate', '--count', String(n), '--rate', 'max', '--duration', '0',
    '--users', '10', '--products', '8', '--seed', String(seed++), '--record', rec]);
  return fs.readFileSync(rec, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

// the witness has every order and inventory record of recs
async function caughtUp(w, recs, ms = 30000) {
  const want = recs.filter((r) => r.topic !== env.TOPIC_NOTIFICATIONS).map((r) => `${r.topic}:${r.partition}:${r.offset}`);
  const deadline = Date.now() + ms;
  for (;;) {
    const have = new Set(w.got().map((e) => e.id));
    const missing = want.filter((i) => !have.has(i));
    if (missing.length === 0) break;
    if (Date.now() > deadline) throw new Error(`witness misses ${missing.length} events`);
    await sleep(100);
  }
  await sleep(300); // notifications come on their own partitions
}

async function metricLine(port, line) {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  const l = (await r.text()).split('\n').find((x) => x.startsWith(line + ' '));
  return l ? Number(l.split(' ').pop()) : NaN;
}

let W, KW;
test.before(async () => {
  await relay.listen();
  W = await witness(tok('staff', 9001), ['orders', 'inventory']);
  KW = await witness(tok('customer', CUSTOMER), ['orders']);
  await caughtUp(W, await produce(30));
});
test.after(() => {
  W.close();
  KW.close();
  relay.close();
});

// connect through the relay to A, subscribe, see 20 events live; cut; 500
// events; release to `to`: recovered, the 500 once and in order, then live
async function scenario(name, opts, to, userId) {
  relay.release(PORT_A);
  const S = sclient(tok('staff', userId), opts);
  await until(() => S.frames.some((f) => f.event === 'connected'), 10000, `${name}: connected`);
  assert.equal(S.connects[0], false, 'a first connection is not a recovery');
  assert.equal(typeof S._pid, 'string', 'the CONNECT answer carried a pid');
  assert.equal((await S.timeout(5000).emitWithAck('subscribe_to_orders')).type, 'order');
  assert.equal((await S.timeout(5000).emitWithAck('subscribe_to_inventory')).type, 'inventory');
  if (opts.transports === undefined)
    await until(() => S.io.engine && S.io.engine.transport.name === 'websocket', 10000, 'upgrade');
  const startW = W.got().length;
  await caughtUp(W, await produce(20));
  await until(() => S.got.length >= W.got().length - startW, 10000, `${name}: live events`);
  const beforeCut = S.got.length;
  const pid = S._pid;
  relay.cut();
  await until(() => !S.connected, 10000, `${name}: the client sees the cut`);
  const missed = await produce(500);
  await caughtUp(W, missed);
  assert.equal(S.got.length, beforeCut, 'nothing reached the client while cut');
  const t0 = Date.now();
  relay.release(to);
  await until(() => S.connects.length >= 2, 20000, `${name}: reconnected`);
  const took = Date.now() - t0;
  assert.equal(S.connects[1], true, `${name}: socket.recovered === true`);
  assert.equal(S._pid, pid, 'the same pid');
  const wantGap = W.got().slice(startW + beforeCut);
  assert.ok(wantGap.length >= 400, `${wantGap.length} events of the 500 are a staff's`);
  await until(() => S.got.length >= W.got().length - startW, 20000, `${name}: replay complete`);
  // then live, with the subscriptions restored (the client sent none again)
  await caughtUp(W, await produce(40));
  await until(() => S.got.length >= W.got().length - startW, 10000, `${name}: live after recovery`);
  await sleep(300);
  const all = W.got().slice(startW);
  assertSameEvents(S.got, all, name);
  assertOrdered(S.got, name);
  assert.ok(S.got.some((e) => e.type === 'inventory_update'), 'inventory subscription restored');
  S.close();
  return { took, replayed: wantGap.length };
}

test('websocket (default client, upgraded): cut, 500 events, back to the same instance', async () => {
  const before = await metricLine(PORT_A, 'oms_resumes_total{outcome="memory"}');
  const r = await scenario('same instance', {}, PORT_A, 9101);
  assert.equal(await metricLine(PORT_A, 'oms_resumes_total{outcome="memory"}'), before + 1, 'served from memory');
  test.diagnostic?.(`recovered ${r.replayed} events in ${r.took} ms`);
});

test('websocket only: cut, 500 events, to another instance (B reads Kafka back)', async () => {
  const before = await metricLine(PORT_B, 'oms_resumes_total{outcome="kafka"}');
  await scenario('another instance', { transports: ['websocket'] }, PORT_B, 9102);
  assert.equal(await metricLine(PORT_B, 'oms_resumes_total{outcome="kafka"}'), before + 1, 'B read Kafka');
});

test('long-polling only: cut, 500 events, to another instance', async () => {
  await scenario('polling', { transports: ['polling'] }, PORT_B, 9103);
});

// a customer's session, cut, events missed, then a reconnect with an offset
// set by hand (as a customer editing it would)
async function customerWith(offsetOf, what) {
  relay.release(PORT_A);
  const K = sclient(tok('customer', CUSTOMER), { transports: ['websocket'] });
  await until(() => K.frames.some((f) => f.event === 'connected'), 10000, 'connected');
  assert.equal((await K.timeout(5000).emitWithAck('subscribe_to_orders')).type, 'order');
  await caughtUp(W, await produce(10));
  await sleep(200);
  relay.cut();
  await until(() => !K.connected, 10000, 'cut seen');
  await caughtUp(W, await produce(200));
  const n = K.got.length;
  K._lastOffset = offsetOf(K._lastOffset);
  relay.release(PORT_A);
  await until(() => K.connects.length >= 2, 20000, `${what}: reconnected`);
  await sleep(1000);
  const after = K.got.slice(n);
  K.close();
  return { recovered: K.connects[1], after };
}

test('a customer with an edited offset: recovered === false and nothing replayed', async () => {
  const r = await customerWith((o) => o.slice(0, 10) + (o[10] === 'A' ? 'B' : 'A') + o.slice(11), 'edited');
  assert.equal(r.recovered, false);
  assert.deepEqual(r.after.map((e) => e.id), [], 'nothing partial, nothing of anyone');
});

test('a customer with a staff client\'s valid offset: only its own events', async () => {
  // a staff client's offset names every partition, class 3 (orders and inventory)
  relay.release(PORT_A);
  const S = sclient(tok('staff', 9104), { transports: ['websocket'] });
  await until(() => S.frames.some((f) => f.event === 'connected'), 10000, 'staff connected');
  await S.timeout(5000).emitWithAck('subscribe_to_orders');
  await S.timeout(5000).emitWithAck('subscribe_to_inventory');
  await caughtUp(W, await produce(10));
  await until(() => S._lastOffset && S._lastOffset[0] === '3', 5000, 'staff offset');
  const stolen = S._lastOffset;
  S.close();
  const r = await customerWith(() => stolen, 'stolen');
  assert.equal(r.recovered, true, 'a valid offset: the customer recovers its own stream');
  assert.ok(r.after.some((e) => e.type === 'order_status'), 'it did miss some of its own orders');
  assert.ok(!r.after.some((e) => e.type === 'inventory_update'), 'no inventory: not a customer\'s');
  for (const e of r.after)
    assert.ok(e.userId === CUSTOMER || e.type === 'system_notification',
      `customer got ${e.id} (${e.type}) of user ${e.userId}`);
});

test('raw CONNECT: another user\'s pid or a garbage offset is a fresh session', async () => {
  relay.release(PORT_A);
  const S = sclient(tok('staff', 9105), { transports: ['websocket'] });
  await until(() => S.frames.some((f) => f.event === 'connected'), 10000, 'staff connected');
  await S.timeout(5000).emitWithAck('subscribe_to_orders');
  await caughtUp(W, await produce(10));
  const { _pid: pid, _lastOffset: offset } = S;
  S.close();
  const cases = [
    { pid, offset, token: tok('customer', CUSTOMER) },      // the staff's pid, not the customer's
    { pid, offset: 'garbage!', token: tok('staff', 9105) },
    { pid, offset: 42, token: tok('staff', 9105) },
    { pid: 'x'.repeat(28), offset, token: tok('staff', 9105) },
  ];
  for (const auth of cases) {
    const ws = new WebSocket(`ws://127.0.0.1:${PORT_A}/socket.io/?EIO=4&transport=websocket`);
    const msgs = [];
    ws.on('message', (m) => msgs.push(m.toString()));
    await new Promise((r) => ws.on('open', r));
    ws.send(`40/events,${JSON.stringify(auth)}`);
    await until(() => msgs.some((m) => m.startsWith('40/events,')), 5000, 'CONNECT answer');
    await sleep(300);
    const ans = JSON.parse(msgs.find((m) => m.startsWith('40/events,')).slice(10));
    assert.notEqual(ans.pid, pid, `a new pid for ${JSON.stringify(auth).slice(0, 60)}`);
    assert.equal(typeof ans.pid, 'string');
    const events = msgs.filter((m) => m.startsWith('42/events,')).map((m) => JSON.parse(m.slice(10)));
    assert.deepEqual(events.map((e) => e[0]), ['connected'], 'no replay');
    ws.close();
  }
});

test('an offset past retention: recovered === false, nothing partial, then live', async () => {
  relay.release(PORT_A);
  const S = sclient(tok('staff', 9106), { transports: ['websocket'] });
  await until(() => S.frames.some((f) => f.event === 'connected'), 10000, 'connected');
  await S.timeout(5000).emitWithAck('subscribe_to_orders');
  await caughtUp(W, await produce(10));
  relay.cut();
  await until(() => !S.connected, 10000, 'cut seen');
  await caughtUp(W, await produce(300));
  // the start of every orders partition is deleted, as retention would
  const ends = new Map();
  for (const e of W.got()) {
    const p = parsePos(e.id);
    if (p.key.startsWith(env.TOPIC_ORDERS + ':')) ends.set(p.key, p.offset);
  }
  const spec = path.join(env.T, 'delete-records.json');
  fs.writeFileSync(spec, JSON.stringify({ version: 1, partitions: [...ends].map(([k, o]) => ({ topic: env.TOPIC_ORDERS, partition: Number(k.split(':').pop()), offset: Number(o) })) }));
  execFileSync('java', ['-cp', `${env.KAFKA_LIBS}/*`, 'org.apache.kafka.tools.DeleteRecordsCommand',
    '--bootstrap-server', env.KAFKA_BROKERS, '--offset-json-file', spec], { stdio: 'ignore', timeout: 60000 });
  const n = S.got.length;
  const pid = S._pid;
  relay.release(PORT_B); // B has 20 events of history: it must read the log
  await until(() => S.connects.length >= 2, 20000, 'reconnected');
  assert.equal(S.connects[1], false, 'recovered === false');
  assert.notEqual(S._pid, pid, 'a new session');
  await sleep(500);
  assert.equal(S.got.length, n, 'nothing partial');
  // the subscriptions came back: live orders flow
  const o = await produce(30);
  await caughtUp(W, o);
  await until(() => S.got.some((e) => e.type === 'order_status' || e.type === 'order_created'), 5000, 'live orders');
  S.close();
});

// ---- subscription filters come back with the session (the session store) ---------------

const PORT_C = Number(env.PORT_C);
const PORT_D = Number(env.PORT_D);
const PRODUCTS = [3, 7];
// what a staff subscribed to inventory {productId: [3, 7]} and orders
// {status: "shipped"} is entitled to of the witness' events
const matching = (e) => e.id.startsWith(env.TOPIC_ORDERS + ':') ? e.data.status === 'shipped'
  : e.id.startsWith(env.TOPIC_INVENTORY + ':') ? PRODUCTS.includes(e.data.productId)
    : true;
const isOrder = (e) => e.id.startsWith(env.TOPIC_ORDERS + ':');
const isInventory = (e) => e.id.startsWith(env.TOPIC_INVENTORY + ':');

// a staff on `from`, subscribed with filters, sees live events (filtered)
async function filteredClient(name, from, userId) {
  relay.release(from);
  const S = sclient(tok('staff', userId), { transports: ['websocket'] });
  await until(() => S.frames.some((f) => f.event === 'connected'), 10000, `${name}: connected`);
  const a = await S.timeout(5000).emitWithAck('subscribe_to_inventory', { filter: { productId: [7, 3, 3] } });
  assert.deepEqual(a.filter, { productId: PRODUCTS }, 'normalized');
  const b = await S.timeout(5000).emitWithAck('subscribe_to_orders', { filter: { status: 'shipped' } });
  assert.deepEqual(b.filter, { status: 'shipped' });
  S.startW = W.got().length;
  S.want = () => W.got().slice(S.startW).filter(matching);
  await caughtUp(W, await produce(60));
  await until(() => S.got.length >= S.want().length, 10000, `${name}: live, filtered`);
  await sleep(300);
  assertSameEvents(S.got, S.want(), `${name}: live before the cut`);
  return S;
}

// cut, `missed` events, back to `to`: recovered, exactly the matching
// events (replay and live after), in order
async function cutAndRecover(S, name, to, { duringCut, editOffset } = {}) {
  const beforeCut = S.got.length;
  const pid = S._pid;
  relay.cut();
  if (duringCut) await duringCut();
  await until(() => !S.connected, 10000, `${name}: the client sees the cut`);
  await caughtUp(W, await produce(300));
  assert.equal(S.got.length, beforeCut, 'nothing reached the client while cut');
  if (editOffset) S._lastOffset = editOffset(S._lastOffset);
  const n = S.connects.length;
  relay.release(to);
  await until(() => S.connects.length > n, 20000, `${name}: reconnected`);
  assert.equal(S.connects[n], true, `${name}: socket.recovered === true`);
  assert.equal(S._pid, pid, 'the same pid');
  await until(() => S.got.length >= S.want().length, 20000, `${name}: replay complete`);
  const replayed = S.got.slice(beforeCut);
  assert.ok(replayed.some(isInventory) && replayed.some(isOrder), `${name}: the replay has both kinds`);
  // later live events are filtered too (the client sent no subscription again)
  await caughtUp(W, await produce(60));
  await until(() => S.got.length >= S.want().length, 10000, `${name}: live after recovery`);
  await sleep(500);
  assertSameEvents(S.got, S.want(), `${name}: matching events only`);
  assertOrdered(S.got, name);
  return replayed.length;
}

test('filters: cut, 300 events, back to the same instance: replay and live filtered', async () => {
  const S = await filteredClient('filters same', PORT_A, 9201);
  const cls = S._lastOffset[0];
  const n = await cutAndRecover(S, 'filters same', PORT_A);
  assert.equal(cls, '7', 'class: orders, inventory, filtered');
  test.diagnostic?.(`replayed ${n} matching events`);
  S.close();
});

test('filters: the instance is killed (SIGKILL) after the confirmation; another restores them from Postgres', async () => {
  const S = await filteredClient('filters kill', PORT_C, 9202);
  // a filter changed just before the crash: confirmed means stored
  const c = await S.timeout(5000).emitWithAck('subscribe_to_orders', { filter: { status: ['shipped'] } });
  assert.deepEqual(c.filter, { status: 'shipped' });
  await cutAndRecover(S, 'filters after SIGKILL', PORT_B, {
    duringCut: async () => process.kill(Number(env.PID_C), 'SIGKILL'),
    // the class digit is not signed: clearing the "filtered" bit must not widen
    editOffset: (o) => '3' + o.slice(1),
  });
  S.close();
});

test('filters: Postgres down on D: recovers on D (memory), elsewhere a fresh session', async () => {
  const t0 = Date.now();
  const S = await filteredClient('filters pg down', PORT_D, 9203);
  assert.ok(Date.now() - t0 < 8000, 'confirmed without waiting long for Postgres');
  const cls = S._lastOffset[0];
  await cutAndRecover(S, 'filters pg down, same instance', PORT_D);
  assert.equal(cls, 'f', 'class: filtered and not stored');
  // to B, which finds no stored state (also with the "not stored" bit cleared)
  const pid = S._pid;
  relay.cut();
  await until(() => !S.connected, 10000, 'cut seen');
  await caughtUp(W, await produce(100));
  const n = S.got.length;
  S._lastOffset = '7' + S._lastOffset.slice(1);
  relay.release(PORT_B);
  await until(() => S.connects.length >= 3, 20000, 'reconnected to B');
  assert.equal(S.connects[2], false, 'recovered === false');
  assert.notEqual(S._pid, pid, 'a new session');
  await caughtUp(W, await produce(60));
  await sleep(1000);
  const after = S.got.slice(n);
  assert.deepEqual(after.filter((e) => isOrder(e) || isInventory(e)).map((e) => e.id), [],
    'nothing replayed, no subscription restored wider than it was');
  S.close();
});
