// oms-producer serve, end to end: orders and stock over HTTP, the events they
// emit reaching a WebSocket client of omsd, and every refused request
// leaving the topics untouched. Started by tests/integration/0800-producer-serve.sh.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { execFile } = require('node:child_process');
const { env, tok, token, connect, sleep } = require('./lib');

const SERVE = `http://127.0.0.1:${env.SERVE_PORT}`;
const staff = tok('staff', 200);
const admin = tok('admin', 100);
const cust7 = tok('customer', 7);
const cust8 = tok('customer', 8);
const service = token({ sub: 'svc', role: 'service' });
// product ids of this run
const P1 = 501, P2 = 502, P3 = 503;
const J = { 'Content-Type': 'application/json' };

async function api(method, path, { token: t, body, raw, headers = {} } = {}) {
  const h = { ...headers };
  if (t) h.Authorization = 'Bearer ' + t;
  let payload;
  if (raw !== undefined) payload = raw;
  else if (body !== undefined) { payload = JSON.stringify(body); h['Content-Type'] ||= 'application/json'; }
  const r = await fetch(SERVE + path, { method, headers: h, body: payload });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text, headers: r.headers };
}

// records in the orders and inventory topics: the sum of their partitions'
// end offsets (kcat -Q with timestamp -1), without blocking the event loop
async function records() {
  const args = ['-b', env.KAFKA_BROKERS, '-Q'];
  for (const t of [env.TOPIC_ORDERS, env.TOPIC_INVENTORY])
    for (let p = 0; p < Number(env.PARTITIONS || 6); p++) args.push('-t', `${t}:${p}:-1`);
  const out = await new Promise((resolve, reject) =>
    execFile('kcat', args, { encoding: 'utf8' }, (err, o) => (err ? reject(err) : resolve(o))));
  const n = { [env.TOPIC_ORDERS]: 0, [env.TOPIC_INVENTORY]: 0 };
  for (const m of out.matchAll(/^(\S+) \[\d+\] offset (\d+)$/gm)) n[m[1]] += Number(m[2]);
  return n;
}

const order = (userToken, items, extra = {}) =>
  api('POST', '/order/orders', { token: userToken, body: { addressId: 3, items, ...extra } });
const setStatus = (t, id, status) => api('PATCH', `/order/orders/${id}/status`, { token: t, body: { status } });
const stock = async (pid) => (await api('GET', `/inventory/${pid}`, { token: staff })).json;

let staffWs, custWs, firstOrder;
const results = {};

test('restock creates the products (name and threshold defaults)', async () => {
  let r = await api('POST', `/inventory/${P1}/restock`, { token: staff, body: { quantity: 12 } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual({ ...r.json, updatedAt: undefined }, {
    productId: P1, productName: `Product ${P1}`, quantity: 12, threshold: 10, status: 'restocked', updatedAt: undefined,
  });
  r = await api('POST', `/inventory/${P2}/restock`, { token: admin, body: { quantity: 100, productName: 'Blue Mug', threshold: 5 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.productName, 'Blue Mug');
  assert.equal(r.json.threshold, 5);
  assert.equal(r.json.status, 'restocked');
  r = await api('POST', `/inventory/${P2}/restock`, { token: service, body: { quantity: 1 } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([r.json.quantity, r.json.status, r.json.productName], [101, 'in_stock', 'Blue Mug']);
  const g = await api('GET', `/inventory/${P1}`, { token: cust7 });
  assert.equal(g.status, 200);
  assert.deepEqual(Object.keys(g.json).sort(), ['productId', 'productName', 'quantity', 'status', 'threshold', 'updatedAt']);
});

test('an order over HTTP reaches subscribed WebSocket clients within a second', async () => {
  staffWs = await connect({ token: staff });
  custWs = await connect({ token: cust7 });
  for (const c of [staffWs, custWs]) {
    c.send('subscribe_to_orders');
    await c.event('subscription_confirmed', 5000, (d) => d.type === 'order');
  }
  staffWs.send('subscribe_to_inventory');
  await staffWs.event('subscription_confirmed', 5000, (d) => d.type === 'inventory');

  const t0 = Date.now();
  const r = await order(cust7, [{ productId: P1, quantity: 3, price: 9.99 }, { productId: P2, quantity: 1, price: 5 }]);
  const answered = Date.now() - t0;
  assert.equal(r.status, 201, r.text);
  firstOrder = r.json.orderId;
  assert.match(firstOrder, /^ord-[0-9a-f]{16}$/);
  assert.equal(r.json.userId, 7);
  assert.equal(r.json.status, 'created');
  assert.equal(r.json.totalAmount, 34.97);
  assert.equal(r.json.addressId, 3);
  assert.deepEqual(r.json.items.map((i) => [i.productId, i.productName, i.quantity, i.price]),
    [[P1, `Product ${P1}`, 3, 9.99], [P2, 'Blue Mug', 1, 5]]);

  const isOrder = (d) => d.data && d.data.orderId === firstOrder;
  const [su, cu, inv] = await Promise.all([
    staffWs.event('order_update', 1000, isOrder),
    custWs.event('order_update', 1000, isOrder),
    staffWs.event('inventory_update', 1000, (d) => d.data && d.data.productId === P1),
  ]);
  const seen = Date.now() - t0;
  console.log(`order answered in ${answered} ms, on the WebSocket within ${seen} ms`);
  results.answerMs = answered;
  results.pushMs = seen;
  assert.equal(su.data.data.eventType, 'OrderCreated');
  assert.equal(su.data.data.totalAmount, 34.97);
  assert.equal(cu.data.userId, 7);
  // 12 - 3 = 9 is at or below the threshold 10: the low-stock alert
  assert.equal(inv.data.data.quantity, 9);
  assert.equal(inv.data.data.status, 'low_stock');
  assert.equal(inv.data.data.delta, -3);
  // P2 stays above its threshold: an inventory_update all the same, in_stock
  const inv2 = await staffWs.event('inventory_update', 1000, (d) => d.data && d.data.productId === P2 && d.data.quantity === 100);
  assert.equal(inv2.data.data.status, 'in_stock');

  const g = await api('GET', `/order/orders/${firstOrder}`, { token: cust7 });
  assert.equal(g.status, 200, g.text);
  assert.equal(g.json.status, 'created');
  assert.equal((await stock(P1)).quantity, 9);
});

test('409 for too little stock, and nothing reaches the topics', async () => {
  const before = await records();
  const r = await order(cust7, [{ productId: P2, quantity: 1, price: 5 }, { productId: P1, quantity: 10, price: 9.99 }]);
  assert.equal(r.status, 409, r.text);
  assert.equal(r.json.error.code, 'insufficient_stock');
  assert.equal(r.json.error.field, 'items[1].quantity');
  assert.match(r.json.error.message, /10 of product 501 asked, 9 in stock/);
  await sleep(500);
  assert.deepEqual(await records(), before);
  assert.equal((await stock(P1)).quantity, 9);
  assert.equal((await stock(P2)).quantity, 100);
});

test('legal transitions only: created -> confirmed -> shipped -> delivered', async () => {
  let r = await setStatus(staff, firstOrder, 'shipped');
  assert.equal(r.status, 409, r.text);
  assert.equal(r.json.error.code, 'illegal_transition');
  r = await setStatus(staff, firstOrder, 'confirmed');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'confirmed');
  r = await setStatus(admin, firstOrder, 'shipped');
  assert.equal(r.status, 200, r.text);
  const before = await records();
  for (const back of ['created', 'confirmed', 'shipped', 'cancelled']) {
    r = await setStatus(staff, firstOrder, back);
    assert.equal(r.status, 409, `shipped -> ${back}: ${r.text}`);
    assert.equal(r.json.error.field, 'status');
  }
  await sleep(300);
  assert.deepEqual(await records(), before);
  const upd = await custWs.event('order_update', 1000, (d) => d.data && d.data.orderId === firstOrder && d.data.status === 'shipped');
  assert.equal(upd.data.data.previousStatus, 'confirmed');
  r = await setStatus(staff, firstOrder, 'delivered');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'delivered');
  r = await setStatus(staff, firstOrder, 'cancelled');
  assert.equal(r.status, 409, r.text);
});

test('cancelling returns the stock (from created and from confirmed)', async () => {
  for (const via of ['created', 'confirmed']) {
    const r = await order(cust7, [{ productId: P1, quantity: 2, price: 9.99 }]);
    assert.equal(r.status, 201, r.text);
    assert.equal((await stock(P1)).quantity, 7);
    if (via === 'confirmed') assert.equal((await setStatus(staff, r.json.orderId, 'confirmed')).status, 200);
    const c = await setStatus(cust7, r.json.orderId, 'cancelled');
    assert.equal(c.status, 200, c.text);
    assert.equal(c.json.status, 'cancelled');
    const s = await stock(P1);
    assert.deepEqual([s.quantity, s.status], [9, 'low_stock']);
    const back = await staffWs.event('inventory_update', 1000,
      (d) => d.data && d.data.productId === P1 && d.data.delta === 2 && !staffWs.used?.has(d.id));
    (staffWs.used ||= new Set()).add(back.data.id);
    assert.equal(back.data.data.quantity, 9);
  }
});

test('who may do what: 401 and 403', async () => {
  const before = await records();
  const items = [{ productId: P1, quantity: 1, price: 1 }];
  const unauth = {
    'no token': undefined,
    'bad signature': tok('customer', 7, { secret: 'another-secret-another-secret-123456' }),
    expired: tok('customer', 7, { ttl: -60 }),
    'alg none': tok('customer', 7, { alg: 'none' }),
    garbage: 'abc.def.ghi',
  };
  for (const [name, t] of Object.entries(unauth)) {
    for (const [m, p, body] of [['POST', '/order/orders', { addressId: 1, items }], ['GET', `/order/orders/${firstOrder}`],
      ['PATCH', `/order/orders/${firstOrder}/status`, { status: 'cancelled' }], ['GET', `/inventory/${P1}`],
      ['POST', `/inventory/${P1}/restock`, { quantity: 5 }]]) {
      const r = await api(m, p, { token: t, body });
      assert.equal(r.status, 401, `${name} ${m} ${p}: ${r.text}`);
      assert.equal(r.headers.get('www-authenticate'), 'Bearer');
      assert.ok(['unauthorized', 'token_expired'].includes(r.json.error.code), name);
    }
  }
  let r = await api('GET', `/inventory/${P1}`, { headers: { Authorization: 'Basic dXNlcjpwYXNz' } });
  assert.equal(r.status, 401);
  const forbidden = [
    ['customer restocks', () => api('POST', `/inventory/${P1}/restock`, { token: cust7, body: { quantity: 5 } }), null],
    ['customer orders for another user', () => order(cust7, items, { userId: 8 }), 'userId'],
    ['customer reads another user\'s order', () => api('GET', `/order/orders/${firstOrder}`, { token: cust8 }), 'orderId'],
    ['customer cancels another user\'s order', () => setStatus(cust8, firstOrder, 'cancelled'), 'orderId'],
  ];
  const mine = await order(cust7, items);
  assert.equal(mine.status, 201);
  forbidden.push(['customer confirms its own order', () => setStatus(cust7, mine.json.orderId, 'confirmed'), 'status']);
  const after = await records();
  for (const [name, call, field] of forbidden) {
    r = await call();
    assert.equal(r.status, 403, `${name}: ${r.text}`);
    assert.equal(r.json.error.code, 'forbidden', name);
    if (field) assert.equal(r.json.error.field, field, name);
  }
  // staff and service act for anyone
  r = await order(staff, items, { userId: 9 });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.userId, 9);
  r = await order(service, items);
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.field, 'userId');
  r = await order(service, items, { userId: 10 });
  assert.equal(r.status, 201, r.text);
  await sleep(300);
  const now = await records();
  assert.equal(now[env.TOPIC_ORDERS] - after[env.TOPIC_ORDERS], 2);
  assert.ok(before[env.TOPIC_ORDERS] < now[env.TOPIC_ORDERS]);
});

test('400 naming the field, 404, 405, 411, 413, 415: no event emitted', async () => {
  // the stock of P1 goes back above its threshold for the checks below
  assert.equal((await api('POST', `/inventory/${P1}/restock`, { token: staff, body: { quantity: 40 } })).status, 200);
  const before = await records();
  const it = (o) => [{ productId: P1, quantity: 1, price: 1, ...o }];
  const bad = [
    // [body, field]
    [{ items: it({}) }, 'addressId'],
    [{ addressId: 0, items: it({}) }, 'addressId'],
    [{ addressId: '', items: it({}) }, 'addressId'],
    [{ addressId: 'x'.repeat(65), items: it({}) }, 'addressId'],
    [{ addressId: 1.5, items: it({}) }, 'addressId'],
    [{ addressId: 1 }, 'items'],
    [{ addressId: 1, items: [] }, 'items'],
    [{ addressId: 1, items: {} }, 'items'],
    [{ addressId: 1, items: Array.from({ length: 101 }, (_, i) => ({ productId: i + 1, quantity: 1, price: 1 })) }, 'items'],
    [{ addressId: 1, items: [7] }, 'items[0]'],
    [{ addressId: 1, items: it({ quantity: 0 }) }, 'items[0].quantity'],
    [{ addressId: 1, items: it({ quantity: -2 }) }, 'items[0].quantity'],
    [{ addressId: 1, items: it({ quantity: 1.5 }) }, 'items[0].quantity'],
    [{ addressId: 1, items: it({ quantity: '2' }) }, 'items[0].quantity'],
    [{ addressId: 1, items: it({ quantity: 10001 }) }, 'items[0].quantity'],
    [{ addressId: 1, items: it({ quantity: null }) }, 'items[0].quantity'],
    [{ addressId: 1, items: it({ price: -0.01 }) }, 'items[0].price'],
    [{ addressId: 1, items: it({ price: '1' }) }, 'items[0].price'],
    [{ addressId: 1, items: it({ price: 1e10 }) }, 'items[0].price'],
    [{ addressId: 1, items: it({ productId: 0 }) }, 'items[0].productId'],
    [{ addressId: 1, items: it({ productId: 9007199254740992 }) }, 'items[0].productId'],
    [{ addressId: 1, items: it({ productId: '501' }) }, 'items[0].productId'],
    [{ addressId: 1, items: it({ colour: 'red' }) }, 'items[0].colour'],
    [{ addressId: 1, items: it({ productName: '' }) }, 'items[0].productName'],
    [{ addressId: 1, items: [...it({}), ...it({})] }, 'items[1].productId'],
    [{ addressId: 1, items: it({}), userId: -1 }, 'userId'],
    [{ addressId: 1, items: it({}), userId: '7' }, 'userId'],
    [{ addressId: 1, items: it({}), total: 3 }, 'total'],
  ];
  for (const [body, field] of bad) {
    const r2 = await api('POST', '/order/orders', { token: cust7, body });
    assert.equal(r2.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${r2.text}`);
    assert.equal(r2.json.error.field, field, JSON.stringify(body).slice(0, 80));
    assert.ok(r2.json.error.message.startsWith(field + ':'), r2.json.error.message);
  }
  const raws = [['{bad', 'body'], ['[1,2]', 'body'], ['"x"', 'body'], ['', 'body'], ['{"addressId":1,"addressId":2}', 'body'],
    ['{"addressId":1,"items":[{"productId":501,"quantity":1,"price":1}]', 'body'], [Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), 'body'],
    ['{"addressId":1,"items":[{"productId":501,"quantity":99999999999999999999999,"price":1}]}', 'body']];
  for (const [raw, field] of raws) {
    const r = await api('POST', '/order/orders', { token: cust7, raw, headers: J });
    assert.equal(r.status, 400, `${String(raw)}: ${r.text}`);
    assert.equal(r.json.error.field, field);
  }
  const restocks = [[{}, 'quantity'], [{ quantity: 0 }, 'quantity'], [{ quantity: 1000001 }, 'quantity'], [{ quantity: 'many' }, 'quantity'],
    [{ quantity: 1, threshold: -1 }, 'threshold'], [{ quantity: 1, threshold: 2.5 }, 'threshold'],
    [{ quantity: 1, productName: '' }, 'productName'], [{ quantity: 1, productName: 'a\nb' }, 'productName'],
    [{ quantity: 1, productName: 'x'.repeat(101) }, 'productName'], [{ quantity: 1, productName: 5 }, 'productName'],
    [{ quantity: 1, price: 3 }, 'price']];
  for (const [body, field] of restocks) {
    const r = await api('POST', `/inventory/${P1}/restock`, { token: staff, body });
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.error.field, field, JSON.stringify(body));
  }
  for (const [body, field] of [[{}, 'status'], [{ status: 'lost' }, 'status'], [{ status: 3 }, 'status'],
    [{ status: 'cancelled', message: 'x'.repeat(501) }, 'message'], [{ status: 'cancelled', why: 1 }, 'why']]) {
    const r = await api('PATCH', `/order/orders/${firstOrder}/status`, { token: staff, body });
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.error.field, field);
  }
  for (const p of ['/inventory/abc', '/inventory/0', '/inventory/0501', '/inventory/-1', '/inventory/9007199254740992', '/inventory/1.5']) {
    const r = await api('GET', p, { token: staff });
    assert.equal(r.status, 400, `${p}: ${r.text}`);
    assert.equal(r.json.error.field, 'productId');
  }
  for (const p of ['/order/orders/a%20b', '/order/orders/' + 'x'.repeat(65), '/order/orders/a*b']) {
    const r = await api('GET', p, { token: staff });
    assert.equal(r.status, 400, `${p}: ${r.text}`);
    assert.equal(r.json.error.field, 'orderId');
  }
  // 404
  let r = await api('GET', '/order/orders/ord-0000000000000000', { token: staff });
  assert.equal(r.status, 404);
  assert.equal(r.json.error.field, 'orderId');
  r = await setStatus(staff, 'ord-0000000000000000', 'confirmed');
  assert.equal(r.status, 404);
  r = await api('GET', '/inventory/999999', { token: staff });
  assert.equal(r.status, 404);
  r = await order(cust7, [{ productId: 999999, quantity: 1, price: 1 }]);
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.error.field, 'items[0].productId');
  for (const p of ['/', '/order', '/order/orders/x/other', '/inventory/1/other', '/inventory']) {
    r = await api('GET', p, { token: staff });
    assert.equal(r.status, 404, p);
  }
  // 405 with Allow
  for (const [m, p, allow] of [['GET', '/order/orders', 'POST'], ['DELETE', `/order/orders/${firstOrder}`, 'GET'],
    ['POST', `/order/orders/${firstOrder}/status`, 'PATCH'], ['PUT', `/inventory/${P1}`, 'GET'], ['GET', `/inventory/${P1}/restock`, 'POST']]) {
    r = await api(m, p, { token: staff });
    assert.equal(r.status, 405, `${m} ${p}`);
    assert.equal(r.headers.get('allow'), allow);
  }
  // 413, 415
  const big = JSON.stringify({ addressId: 1, items: it({}), pad: 'x'.repeat(70000) });
  r = await api('POST', '/order/orders', { token: cust7, raw: big, headers: J });
  assert.equal(r.status, 413);
  r = await api('POST', '/order/orders', { token: cust7, raw: JSON.stringify({ addressId: 1, items: it({}) }), headers: { 'Content-Type': 'text/plain' } });
  assert.equal(r.status, 415);
  await sleep(500);
  assert.deepEqual(await records(), before, 'no event emitted by any refused request');
});

test('concurrent orders for one product: never more than the stock', async () => {
  let r = await api('POST', `/inventory/${P3}/restock`, { token: staff, body: { quantity: 10, threshold: 2 } });
  assert.equal(r.status, 200, r.text);
  const all = await Promise.all(Array.from({ length: 25 }, (_, i) =>
    order(i % 2 ? cust7 : cust8, [{ productId: P3, quantity: 1, price: 1 }])));
  const codes = all.map((x) => x.status).sort();
  assert.equal(codes.filter((c) => c === 201).length, 10, codes.join(','));
  assert.equal(codes.filter((c) => c === 409).length, 15, codes.join(','));
  const s = await stock(P3);
  assert.deepEqual([s.quantity, s.status], [0, 'out_of_stock']);
});

test('sequential orders: latency', async () => {
  const n = 50;
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await order(cust7, [{ productId: P2, quantity: 1, price: 5 }]);
    ms.push(performance.now() - t0);
    assert.equal(r.status, 201, r.text);
  }
  ms.sort((a, b) => a - b);
  results.p50 = ms[n / 2];
  results.p99 = ms[n - 1];
  results.rate = n / (ms.reduce((a, b) => a + b, 0) / 1000);
  console.log(`${n} sequential orders: p50 ${results.p50.toFixed(1)} ms, max ${results.p99.toFixed(1)} ms, ${results.rate.toFixed(0)} orders/s`);
  assert.equal((await stock(P2)).quantity, 100 - n);
});

test('hand over to the shell script', async () => {
  staffWs.close();
  custWs.close();
  fs.writeFileSync(env.RESULT_FILE, JSON.stringify({ firstOrder, p1: (await stock(P1)).quantity, p2: (await stock(P2)).quantity, P1, P2, P3, ...results }));
});
