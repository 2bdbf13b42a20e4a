'use strict';
// Subscription filters (issue #20, DESIGN §3.1) end to end against two omsd
// (0715-filters.sh): A keeps a history, B none (its resumes read Kafka).
// Plain `ws` clients and socket.io-client: each operator, conjunctions, the
// normalized echo, bad filters, role first, unsubscribe/resubscribe, resume
// replaying only what the filter lets through, and many connections with
// distinct product filters getting exactly their events.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const WebSocket = require('ws');
const { io } = require('socket.io-client');
const { env, tok, sleep, producerAsync } = require('./lib');

const PORT_A = Number(env.PORT_A);
const PORT_B = Number(env.PORT_B);
const STAFF = tok('staff', 9001);
const ADMIN = tok('admin', 9002);
const uniq = () => Math.random().toString(36).slice(2, 10);
let seq = 0;

// A plain client keeping every frame.
function open(port, t) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/events`, { headers: { Authorization: 'Bearer ' + t } });
    const c = { ws, frames: [], waiters: [] };
    ws.on('message', (m) => {
      const f = JSON.parse(m.toString());
      c.frames.push(f);
      c.waiters = c.waiters.filter((w) => !(w.pred(f) && (w.resolve(f), true)));
    });
    c.next = (pred, ms = 5000, what = 'frame') => {
      const seen = c.frames.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((res, rej) => {
        const tm = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms);
        c.waiters.push({ pred, resolve: (f) => { clearTimeout(tm); res(f); } });
      });
    };
    c.send = (event, data) => ws.send(JSON.stringify(data === undefined ? { event } : { event, data }));
    // the answer to a subscribe: subscription_confirmed or error, after what was there
    c.ask = async (event, data) => {
      const from = c.frames.length;
      c.send(event, data);
      return c.next((f) => c.frames.indexOf(f) >= from &&
        ['subscription_confirmed', 'error', 'unsubscribed'].includes(f.event), 5000, `answer to ${event}`);
    };
    c.updates = (name) => c.frames.filter((f) => f.event === name).map((f) => f.data);
    c.close = () => ws.close();
    ws.on('error', reject);
    c.next((f) => f.event === 'connected').then(() => resolve(c), reject);
  });
}

async function emit(events) {
  const file = `${env.T}/emit-${++seq}.jsonl`;
  fs.writeFileSync(file, events.map((e) => JSON.stringify(e)).join('\n') + '\n');
  await producerAsync(['emit', '--file', file]);
}

const inv = (productId, quantity, status = quantity === 0 ? 'out_of_stock' : quantity <= 10 ? 'low_stock' : 'in_stock') =>
  ({ type: 'InventoryChanged', productId, productName: `P${productId}`, quantity, threshold: 10, status, delta: -1 });
const created = (orderId, userId, totalAmount) =>
  ({ type: 'OrderCreated', orderId, aliasId: 'A-' + orderId, userId, totalAmount, status: 'created', items: [] });
const changed = (orderId, userId, status, previousStatus) =>
  ({ type: 'OrderStatusChanged', orderId, aliasId: 'A-' + orderId, userId, status, previousStatus });

// wait until c has n frames of event name matching pred (or time out)
async function waitCount(c, name, n, pred = () => true, ms = 10000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (c.updates(name).filter(pred).length >= n) return;
    await sleep(50);
  }
  assert.fail(`expected ${n} ${name}, got ${c.updates(name).filter(pred).length}`);
}

test('inventory: set membership, comparison, conjunction, normalized echo', async () => {
  const base = 100000 + Math.floor(Math.random() * 100000);
  const all = await open(PORT_A, STAFF);
  const set = await open(PORT_A, STAFF);
  const lt = await open(PORT_A, ADMIN);
  const both = await open(PORT_A, STAFF);
  await all.ask('subscribe_to_inventory');
  const a1 = await set.ask('subscribe_to_inventory', { filter: { productId: [base + 3, base + 1, base + 3] } });
  assert.equal(a1.event, 'subscription_confirmed');
  assert.deepEqual(a1.data.filter, { productId: [base + 1, base + 3] }); // sorted, distinct
  assert.ok(Array.isArray(a1.data.positions));
  const a2 = await lt.ask('subscribe_to_inventory', { filter: { quantity: { lt: 10, lte: 10 } } });
  assert.deepEqual(a2.data.filter, { quantity: { lt: 10 } }); // the tighter bound
  const a3 = await both.ask('subscribe_to_inventory', { filter: { quantity: { gte: 5 }, productId: [base + 1, base + 2] } });
  assert.deepEqual(a3.data.filter, { productId: [base + 1, base + 2], quantity: { gte: 5 } });
  const evs = [inv(base + 1, 3), inv(base + 2, 50), inv(base + 3, 7), inv(base + 1, 5), inv(base + 4, 0), inv(base + 2, 4)];
  await emit(evs);
  await waitCount(all, 'inventory_update', evs.length, (d) => d.data.productId > base && d.data.productId <= base + 4);
  await sleep(300); // anything extra would have come by now
  const ids = (c) => c.updates('inventory_update').map((d) => d.data).filter((d) => d.productId > base && d.productId <= base + 4);
  const want = (pred) => ids(all).filter(pred).map((d) => d.eventId);
  assert.deepEqual(ids(set).map((d) => d.eventId), want((d) => d.productId === base + 1 || d.productId === base + 3));
  assert.deepEqual(ids(lt).map((d) => d.eventId), want((d) => d.quantity < 10));
  assert.deepEqual(ids(both).map((d) => d.eventId), want((d) => d.quantity >= 5 && (d.productId === base + 1 || d.productId === base + 2)));
  assert.equal(ids(set).length, 3);
  assert.equal(ids(lt).length, 5);
  assert.equal(ids(both).length, 2);
  for (const c of [all, set, lt, both]) c.close();
});

test('orders: equality on orderId, status set, totalAmount, previousStatus; unsubscribe and resubscribe replace the filter', async () => {
  const p = 'of-' + uniq();
  const all = await open(PORT_A, STAFF);
  const byId = await open(PORT_A, STAFF);
  const byStatus = await open(PORT_A, STAFF);
  const big = await open(PORT_A, ADMIN);
  const prev = await open(PORT_A, ADMIN);
  await all.ask('subscribe_to_orders');
  assert.deepEqual((await byId.ask('subscribe_to_orders', { filter: { orderId: `${p}-1` } })).data.filter, { orderId: `${p}-1` });
  assert.deepEqual((await byStatus.ask('subscribe_to_orders', { filter: { status: ['shipped', 'delivered'] } })).data.filter,
    { status: ['delivered', 'shipped'] });
  assert.deepEqual((await big.ask('subscribe_to_orders', { filter: { totalAmount: { gte: 500 } } })).data.filter, { totalAmount: { gte: 500 } });
  assert.deepEqual((await prev.ask('subscribe_to_orders', { filter: { previousStatus: 'shipped', eventType: 'order_status_changed' } })).data.filter,
    { eventType: 'OrderStatusChanged', previousStatus: 'shipped' });
  const evs = [created(`${p}-1`, 11, 650), created(`${p}-2`, 12, 20), changed(`${p}-1`, 11, 'confirmed', 'created'),
    changed(`${p}-2`, 12, 'shipped', 'confirmed'), changed(`${p}-1`, 11, 'shipped', 'confirmed'), changed(`${p}-1`, 11, 'delivered', 'shipped')];
  await emit(evs);
  const mine = (c) => c.updates('order_update').map((d) => d.data).filter((d) => d.orderId.startsWith(p));
  await waitCount(all, 'order_update', evs.length, (d) => d.data.orderId.startsWith(p));
  await sleep(300);
  const want = (pred) => mine(all).filter(pred).map((d) => d.eventId);
  assert.deepEqual(mine(byId).map((d) => d.eventId), want((d) => d.orderId === `${p}-1`));
  assert.equal(mine(byId).length, 4);
  // (order holds per partition only: compare as sets where orders differ)
  assert.deepEqual(mine(byStatus).map((d) => d.eventId), want((d) => d.status === 'shipped' || d.status === 'delivered'));
  assert.deepEqual(mine(byStatus).map((d) => d.status).sort(), ['delivered', 'shipped', 'shipped']);
  assert.deepEqual(mine(big).map((d) => d.orderId), [`${p}-1`]); // only OrderCreated has totalAmount
  assert.deepEqual(mine(prev).map((d) => d.status), ['delivered']);
  // resubscribe without a filter: everything again (no echo); unsubscribe: nothing
  const r = await byId.ask('subscribe_to_orders', {});
  assert.equal(r.event, 'subscription_confirmed');
  assert.equal(r.data.filter, undefined);
  assert.equal((await big.ask('unsubscribe', { type: 'order' })).event, 'unsubscribed');
  const q = 'of2-' + uniq();
  await emit([created(`${q}-1`, 11, 900), created(`${q}-2`, 12, 5)]);
  await waitCount(byId, 'order_update', 2, (d) => d.data.orderId.startsWith(q));
  await sleep(300);
  assert.equal(big.updates('order_update').filter((d) => d.data.orderId.startsWith(q)).length, 0);
  // subscribe again with another filter: it replaces the one before
  await big.ask('subscribe_to_orders', { filter: { orderId: [`${q}-2`] } });
  await emit([created(`${q}-1`, 11, 901), created(`${q}-2`, 12, 6)]);
  await waitCount(big, 'order_update', 1, (d) => d.data.orderId.startsWith(q));
  await sleep(300);
  assert.deepEqual(big.updates('order_update').map((d) => d.data.orderId).filter((id) => id.startsWith(q)), [`${q}-2`]);
  for (const c of [all, byId, byStatus, big, prev]) c.close();
});

test('bad filters: error bad_filter naming the field; the subscription stays as it was', async () => {
  const c = await open(PORT_A, STAFF);
  await c.ask('subscribe_to_inventory', { filter: { productId: 77 } });
  const cases = [
    [{ filter: { colour: 'red' } }, 'colour'],
    [{ filter: { productId: '17' } }, 'productId'],
    [{ filter: { productId: [] } }, 'productId'],
    [{ filter: { quantity: { below: 3 } } }, 'quantity'],
    [{ filter: { productName: { lt: 3 } } }, 'productName'],
    [{ filter: { status: 'shipped' } }, 'status'],
    [{ filter: [1, 2] }, 'filter'],
    [{ filter: { productId: Array.from({ length: 300 }, (_, i) => i) } }, 'server.filter_max_values'],
  ];
  for (const [data, needle] of cases) {
    const a = await c.ask('subscribe_to_inventory', data);
    assert.equal(a.event, 'error', JSON.stringify(data));
    assert.equal(a.data.code, 'bad_filter');
    assert.ok(a.data.message.includes(needle), `${a.data.message} names ${needle}`);
  }
  const o = await c.ask('subscribe_to_orders', { filter: { productId: 1 } });
  assert.equal(o.data.code, 'bad_filter');
  assert.match(o.data.message, /productId: not a field of order events/);
  // still subscribed with productId 77 only, and not to orders
  const base = 300000 + Math.floor(Math.random() * 100000);
  await emit([inv(77, 1), inv(base, 1)]);
  await waitCount(c, 'inventory_update', 1, (d) => d.data.productId === 77);
  await sleep(300);
  assert.equal(c.updates('inventory_update').filter((d) => d.data.productId === base).length, 0);
  assert.equal(c.updates('order_update').length, 0);
  c.close();
});

test('roles first: a customer filter narrows its own orders and never widens to other users', async () => {
  const p = 'rf-' + uniq();
  const cust = await open(PORT_A, tok('customer', 31));
  const a = await cust.ask('subscribe_to_orders', { filter: { userId: [31, 32], orderId: [`${p}-a`, `${p}-b`, `${p}-c`] } });
  assert.equal(a.event, 'subscription_confirmed');
  assert.deepEqual(a.data.filter, { orderId: [`${p}-a`, `${p}-b`, `${p}-c`], userId: [31, 32] });
  // inventory stays forbidden to customers, filter or not
  const f = await cust.ask('subscribe_to_inventory', { filter: { productId: 1 } });
  assert.equal(f.data.code, 'forbidden');
  const witness = await open(PORT_A, STAFF);
  await witness.ask('subscribe_to_orders');
  await emit([created(`${p}-a`, 31, 1), created(`${p}-b`, 32, 1), created(`${p}-c`, 31, 1), created(`${p}-d`, 31, 1)]);
  await waitCount(witness, 'order_update', 4, (d) => d.data.orderId.startsWith(p));
  await sleep(300);
  const got = cust.updates('order_update').map((d) => d.data.orderId).filter((id) => id.startsWith(p));
  assert.deepEqual(got.sort(), [`${p}-a`, `${p}-c`]); // not 32's order, not its own unfiltered one
  cust.close();
  witness.close();
});

test('Socket.IO: the same filters, echo and bad_filter as acknowledgements', async () => {
  const s = io(`http://127.0.0.1:${PORT_A}/events`, { auth: { token: STAFF }, transports: ['websocket'], reconnection: false, forceNew: true });
  const got = [];
  s.on('inventory_update', (d) => got.push(d));
  await new Promise((res, rej) => { s.once('connected', res); s.once('connect_error', rej); });
  const base = 500000 + Math.floor(Math.random() * 100000);
  const ok = await s.timeout(5000).emitWithAck('subscribe_to_inventory', { filter: { productId: [base + 2, base], quantity: { gt: 0 } } });
  assert.deepEqual(ok.filter, { productId: [base, base + 2], quantity: { gt: 0 } });
  const bad = await s.timeout(5000).emitWithAck('subscribe_to_inventory', { filter: { quantity: { lt: 'x' } } });
  assert.equal(bad.code, 'bad_filter');
  assert.match(bad.message, /^quantity: /);
  const witness = await open(PORT_A, STAFF);
  await witness.ask('subscribe_to_inventory');
  await emit([inv(base, 5), inv(base + 1, 5), inv(base + 2, 0), inv(base + 2, 9)]);
  await waitCount(witness, 'inventory_update', 4, (d) => d.data.productId >= base && d.data.productId <= base + 2);
  await sleep(300);
  assert.deepEqual(got.map((d) => [d.data.productId, d.data.quantity]).sort((a, b) => a[0] - b[0]), [[base, 5], [base + 2, 9]]);
  s.close();
  witness.close();
});

// resume: from memory on A, from Kafka on B (no history): the replay holds
// only the events the filter lets through, and `replayed` counts them
for (const [name, port] of [['memory (A)', PORT_A], ['Kafka (B)', PORT_B]]) {
  test(`resume from ${name} replays only what the filter lets through`, async () => {
    const base = 700000 + Math.floor(Math.random() * 100000);
    const filter = { productId: [base, base + 1], quantity: { lt: 10 } };
    const c1 = await open(port, STAFF);
    const conf = await c1.ask('subscribe_to_inventory', { filter });
    const since = [...c1.frames.find((f) => f.event === 'connected').data.positions, ...conf.data.positions];
    c1.close();
    await sleep(200);
    const witness = await open(port, STAFF);
    await witness.ask('subscribe_to_inventory');
    const evs = [];
    for (let i = 0; i < 12; i++) evs.push(inv(base + (i % 3), i % 2 ? 5 : 50));
    await emit(evs);
    await waitCount(witness, 'inventory_update', evs.length, (d) => d.data.productId >= base && d.data.productId <= base + 2);
    const want = witness.updates('inventory_update').map((d) => d.data)
      .filter((d) => (d.productId === base || d.productId === base + 1) && d.quantity < 10).map((d) => d.eventId);
    assert.equal(want.length, 4);
    const c2 = await open(port, STAFF);
    await c2.ask('subscribe_to_inventory', { filter });
    c2.send('resume', { since });
    const r = await c2.next((f) => f.event === 'resumed', 20000, 'resumed');
    assert.equal(r.data.recovered, true);
    assert.equal(r.data.replayed, 4);
    const replayed = c2.updates('inventory_update').map((d) => d.data).filter((d) => d.productId >= base && d.productId <= base + 2);
    assert.deepEqual(replayed.map((d) => d.eventId).sort(), [...want].sort());
    c2.close();
    witness.close();
  });
}

// The case end to end: CONNS connections (default 10,000) with
// 100 distinct product filters each get exactly the events of their product.
test('many connections with 100 distinct product filters get exactly their events', { timeout: 300000 }, async () => {
  const conns = Number(env.FILTER_CONNS || 10000);
  const P = 100;
  const base = 900000 + Math.floor(Math.random() * 50000);
  const clients = [];
  let next = 0;
  // connect with bounded concurrency
  async function one(i) {
    const product = base + (i % P);
    const c = { product, got: 0, wrong: 0, confirmed: false };
    await new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${PORT_A}/events`, { headers: { Authorization: 'Bearer ' + STAFF }, perMessageDeflate: false });
      c.ws = ws;
      ws.on('message', (m) => {
        const f = JSON.parse(m.toString());
        if (f.event === 'connected') ws.send(JSON.stringify({ event: 'subscribe_to_inventory', data: { filter: { productId: product } } }));
        else if (f.event === 'subscription_confirmed') { c.confirmed = true; resolve(); }
        else if (f.event === 'inventory_update') {
          if (f.data.data.productId === product) c.got++; else c.wrong++;
        } else if (f.event === 'error') reject(new Error(JSON.stringify(f.data)));
      });
      ws.on('error', reject);
    });
    clients.push(c);
  }
  const workers = Array.from({ length: 200 }, async () => { while (next < conns) await one(next++); });
  await Promise.all(workers);
  assert.equal(clients.length, conns);
  // 3 events per filtered product, and 50 of products nobody filters on
  const evs = [];
  for (let k = 0; k < 3; k++) for (let p = 0; p < P; p++) evs.push(inv(base + p, k + 1));
  for (let p = 0; p < 50; p++) evs.push(inv(base + P + p, 1));
  await emit(evs);
  const until = Date.now() + 60000;
  while (Date.now() < until && clients.some((c) => c.got < 3)) await sleep(200);
  await sleep(500);
  const short = clients.filter((c) => c.got !== 3);
  assert.equal(short.length, 0, `${short.length} connections did not get exactly 3 events (e.g. ${short.slice(0, 3).map((c) => c.got)})`);
  assert.equal(clients.reduce((n, c) => n + c.wrong, 0), 0);
  for (const c of clients) c.ws.terminate();
});
