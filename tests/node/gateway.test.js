// omsd gateway, end to end with the `ws` client library and the real broker:
// auth, roles, protocol errors, REST, DLQ, slow clients, metrics, expiry.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { env, PORT, tok, token, connect, rest, sleep, producer, producerAsync, kcat, metric } = require('./lib');

const admin = tok('admin', 100);
const staff = tok('staff', 200);
const cust1 = tok('customer', 1);
const cust2 = tok('customer', 2);
const service = token({ sub: 'svc', role: 'service' });
const uniq = () => Math.random().toString(36).slice(2, 10);

async function orderFor(userId, id = 'o-' + uniq()) {
  const r = await rest('POST', '/websocket/notifications/order-created', {
    token: admin, body: { orderId: id, aliasId: 'A-' + id, userId, totalAmount: 10.5, status: 'created' },
  });
  assert.equal(r.status, 202, r.text);
  return id;
}
async function marker() {
  const title = 'marker-' + uniq();
  const r = await rest('POST', '/websocket/broadcast', { token: admin, body: { type: 'system', title, message: 'm' } });
  assert.equal(r.status, 202, r.text);
  return title;
}
const isMarker = (title) => (d) => d.data && d.data.title === title;

test('connect with a header token: connected carries user, role and positions', async () => {
  const c = await connect({ token: cust1 });
  const d = c.all('connected')[0].data;
  assert.equal(d.userId, 1);
  assert.equal(d.role, 'customer');
  assert.match(d.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(d.positions.length, 6);
  for (const p of d.positions) assert.match(p, new RegExp(`^${env.TOPIC_NOTIFICATIONS.replace(/\./g, '\\.')}:\\d+:-?\\d+$`));
  c.close();
});

test('connect with ?token=', async () => {
  const c = await connect({ token: staff, query: true });
  assert.equal(c.all('connected')[0].data.role, 'staff');
  c.close();
});

test('refused upgrades answer 401 with a JSON error', async () => {
  const cases = {
    'no token': undefined,
    'bad signature': tok('admin', 1, { secret: 'another-secret-another-secret-123456' }),
    expired: tok('admin', 1, { ttl: -60 }),
    'alg none': tok('admin', 1, { alg: 'none' }),
    'garbage': 'abc.def.ghi',
  };
  for (const [name, t] of Object.entries(cases)) {
    await assert.rejects(connect({ token: t }), (e) => {
      assert.equal(e.status, 401, name);
      assert.equal(typeof e.body.error.message, 'string', name);
      assert.ok(['unauthorized', 'token_expired'].includes(e.body.error.code), name);
      return true;
    }, name);
  }
  const e = await connect({ token: tok('admin', 1, { ttl: -60 }) }).catch((x) => x);
  assert.equal(e.body.error.code, 'token_expired');
});

test('origin: foreign refused with 403, allowed and own origin accepted', async () => {
  await assert.rejects(connect({ token: admin, origin: 'http://evil.example' }), (e) => {
    assert.equal(e.status, 403);
    assert.equal(e.body.error.code, 'forbidden_origin');
    return true;
  });
  const a = await connect({ token: admin, origin: 'http://allowed.example' });
  a.close();
  const own = await connect({ token: admin, origin: `http://127.0.0.1:${PORT}` });
  own.close();
});

test('roles: customers see only their orders, staff all, inventory only staff', async () => {
  const c1 = await connect({ token: cust1 });
  const c2 = await connect({ token: cust2 });
  const st = await connect({ token: staff });
  for (const c of [c1, c2, st]) c.send('subscribe_to_orders');
  for (const c of [c1, c2, st]) await c.event('subscription_confirmed');
  const sc = c1.all('subscription_confirmed')[0].data;
  assert.equal(sc.type, 'order');
  assert.equal(sc.positions.length, 6);
  c1.send('subscribe_to_inventory');
  const err = await c1.event('error');
  assert.equal(err.data.code, 'forbidden');
  st.send('subscribe_to_inventory');
  await st.event('subscription_confirmed', 5000, (d) => d.type === 'inventory');

  const o1 = await orderFor(1);
  const o2 = await orderFor(2);
  const inv = await rest('POST', '/websocket/notifications/inventory-alert', {
    token: staff, body: { productId: 101, productName: 'Test Product', currentQuantity: 5, threshold: 10, alertType: 'low_stock' },
  });
  assert.equal(inv.status, 202, inv.text);
  const note = await rest('POST', '/websocket/broadcast', { token: admin, body: { type: 'user', userId: 1, title: 'for one', message: 'hi' } });
  assert.equal(note.status, 202, note.text);
  // topics are read in parallel: wait for what must come, then give what
  // must not come time to show up
  const orderId = (id) => (d) => d.data.orderId === id;
  await c1.event('order_update', 5000, orderId(o1));
  await c2.event('order_update', 5000, orderId(o2));
  await st.event('order_update', 5000, orderId(o1));
  await st.event('order_update', 5000, orderId(o2));
  await st.event('inventory_update');
  await c1.event('user_notification');
  const m = await marker();
  for (const c of [c1, c2, st]) await c.event('system_notification', 5000, isMarker(m));
  await sleep(300);

  const orders = (c) => c.all('order_update').map((f) => f.data.data.orderId);
  assert.deepEqual(orders(c1), [o1]);
  assert.deepEqual(orders(c2), [o2]);
  assert.deepEqual(orders(st).sort(), [o1, o2].sort());
  assert.equal(c1.all('inventory_update').length, 0);
  assert.equal(c2.all('inventory_update').length, 0);
  const iu = st.all('inventory_update');
  assert.equal(iu.length, 1);
  assert.equal(iu[0].data.type, 'inventory_update');
  assert.equal(iu[0].data.data.quantity, 5);
  assert.equal(c1.all('user_notification').length, 1);
  assert.equal(c2.all('user_notification').length, 0);
  assert.equal(st.all('user_notification').length, 0);
  // RealTimeEvent shape and position
  const rt = c1.all('order_update')[0].data;
  assert.equal(rt.type, 'order_status');
  assert.equal(rt.userId, 1);
  assert.match(rt.id, new RegExp(`^${env.TOPIC_ORDERS.replace(/\./g, '\\.')}:\\d+:\\d+$`));
  assert.match(rt.timestamp, /Z$/);
  for (const c of [c1, c2, st]) c.close();
});

test('service tokens receive nothing and may not subscribe', async () => {
  const s = await connect({ token: service });
  s.send('subscribe_to_orders');
  assert.equal((await s.event('error')).data.code, 'forbidden');
  s.close();
});

test('unsubscribe stops order updates', async () => {
  const c = await connect({ token: staff });
  const witness = await connect({ token: staff });
  for (const x of [c, witness]) x.send('subscribe_to_orders');
  await c.event('subscription_confirmed');
  await witness.event('subscription_confirmed');
  const before = await orderFor(1);
  await c.event('order_update', 5000, (d) => d.data.orderId === before);
  c.send('unsubscribe', { type: 'order' });
  assert.equal((await c.event('unsubscribed')).data.type, 'order');
  const after = await orderFor(1);
  await witness.event('order_update', 5000, (d) => d.data.orderId === after);
  await sleep(300);
  assert.deepEqual(c.all('order_update').map((f) => f.data.data.orderId), [before]);
  c.send('unsubscribe', { type: 'nonsense' });
  assert.equal((await c.event('error')).data.code, 'bad_request');
  c.close();
  witness.close();
});

test('ping answers pong', async () => {
  const c = await connect({ token: cust1 });
  c.send('ping');
  const p = await c.event('pong');
  assert.match(p.data.timestamp, /Z$/);
  c.close();
});

test('bad frames get errors and the connection stays', async () => {
  const c = await connect({ token: cust1 });
  c.ws.send('not json at all');
  assert.equal((await c.event('error')).data.code, 'bad_request');
  c.ws.send('[1,2,3]');
  c.send('frobnicate');
  await c.next((f) => f.event === 'error' && f.data.code === 'unknown_event', 5000, 'unknown_event');
  assert.match(c.all('error').find((f) => f.data.code === 'unknown_event').data.message, /frobnicate/);
  c.send('ping');
  await c.event('pong');
  assert.equal(c.closed, null);
  c.close();
});

test('an oversized frame gets too_large and a 1009 close', async () => {
  const c = await connect({ token: cust1 });
  c.ws.send(JSON.stringify({ event: 'ping', data: 'x'.repeat(1024 * 1024 + 10) }));
  assert.equal((await c.event('error')).data.code, 'too_large');
  const closed = await c.waitClose();
  assert.equal(closed.code, 1009);
});

test('a rate-limit flood gets rate_limited, then a 1008 close', async () => {
  const c = await connect({ token: cust1 });
  for (let i = 0; i < 400 && !c.closed; i++) c.send('ping');
  await c.next((f) => f.event === 'error' && f.data.code === 'rate_limited', 5000, 'rate_limited');
  const closed = await c.waitClose();
  assert.equal(closed.code, 1008);
  assert.ok((await metric('oms_rate_limited_total')) > 0);
});

test('REST: health, stats, presence, 401/403/404/405/413, CORS', async () => {
  const h = await rest('GET', '/websocket/health');
  assert.equal(h.status, 200);
  assert.equal(h.json.status, 'ok');
  assert.equal(h.json.dependencies.kafka.status, 'up');
  // without a staff or admin token: the status of each dependency, nothing
  // else (no broker address, no error text, no counters)
  const publicOnly = (r, who) => {
    assert.equal(r.status, 200, who);
    assert.deepEqual(Object.keys(r.json).sort(), ['dependencies', 'status', 'uptimeSeconds'], who);
    for (const [name, dep] of Object.entries(r.json.dependencies)) {
      assert.ok(Object.keys(dep).every((k) => k === 'status' || k === 'required'), `${who}: ${name} ${JSON.stringify(dep)}`);
    }
    for (const b of (env.KAFKA_BROKERS || '').split(',')) if (b) assert.ok(!r.text.includes(b), `${who}: ${r.text}`);
    assert.ok(!/"(brokers|error|connections)"/.test(r.text), `${who}: ${r.text}`);
  };
  publicOnly(h, 'no token');
  publicOnly(await rest('GET', '/websocket/health', { token: cust1 }), 'customer');
  publicOnly(await rest('GET', '/websocket/health', { token: service }), 'service');
  publicOnly(await rest('GET', '/websocket/health', { token: tok('admin', 1, { ttl: -60 }) }), 'expired admin');
  publicOnly(await rest('GET', '/websocket/health', { token: 'not-a-jwt' }), 'invalid token');
  publicOnly(await rest('GET', '/websocket/health', { headers: { Authorization: 'Basic eDp5' } }), 'not a bearer');
  for (const [who, r] of [['staff', await rest('GET', '/websocket/health', { token: staff })],
    ['admin ?token=', await rest('GET', `/websocket/health?token=${admin}`)]]) {
    assert.equal(r.status, 200, who);
    assert.equal(r.json.dependencies.kafka.brokers, env.KAFKA_BROKERS, `${who}: ${r.text}`);
    assert.equal(typeof r.json.connections, 'number', who);
  }

  const c = await connect({ token: cust1 });
  const st = await rest('GET', '/websocket/stats', { token: staff });
  assert.equal(st.status, 200);
  assert.ok(st.json.connections >= 1);
  assert.equal((await rest('GET', '/websocket/stats', { token: cust1 })).status, 403);
  const none = await rest('GET', '/websocket/stats');
  assert.equal(none.status, 401);
  assert.equal(none.json.error.code, 'unauthorized');
  assert.equal(none.headers.get('www-authenticate'), 'Bearer');

  const on = await rest('GET', '/websocket/users/online', { token: admin });
  assert.equal(on.status, 200);
  assert.ok(on.json.users.some((u) => u.userId === 1 && u.connections >= 1));
  const u1 = await rest('GET', '/websocket/users/1/online', { token: admin });
  assert.deepEqual([u1.json.userId, u1.json.online], [1, true]);
  const u9 = await rest('GET', '/websocket/users/999/online', { token: admin });
  assert.deepEqual([u9.json.online, u9.json.connections], [false, 0]);
  assert.equal((await rest('GET', '/websocket/users/abc/online', { token: admin })).status, 404);
  c.close();

  const nf = await rest('GET', '/no/such/path');
  assert.equal(nf.status, 404);
  assert.equal(nf.json.error.code, 'not_found');
  const m = await rest('GET', '/websocket/broadcast', { token: admin });
  assert.equal(m.status, 405);
  assert.match(m.headers.get('allow'), /POST/);
  const big = await rest('POST', '/websocket/broadcast', { token: admin, raw: 'x'.repeat((1 << 20) + 1), headers: { 'Content-Type': 'application/json' } });
  assert.equal(big.status, 413);
  assert.equal(big.json.error.code, 'too_large');

  const pre = await rest('OPTIONS', '/websocket/broadcast', { headers: { Origin: 'http://allowed.example', 'Access-Control-Request-Method': 'POST' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), 'http://allowed.example');
  assert.match(pre.headers.get('access-control-allow-headers'), /Authorization/);
  const foreign = await rest('OPTIONS', '/websocket/broadcast', { headers: { Origin: 'http://evil.example' } });
  assert.equal(foreign.headers.get('access-control-allow-origin'), null);
});

test('REST triggers validate bodies and check roles', async () => {
  const url = '/websocket/notifications/order-created';
  assert.equal((await rest('POST', url, { body: { orderId: '1' } })).status, 401);
  assert.equal((await rest('POST', url, { token: cust1, body: { orderId: '1' } })).status, 403);
  const missing = await rest('POST', url, { token: staff, body: { aliasId: 'A', userId: 1, totalAmount: 1 } });
  assert.equal(missing.status, 400);
  assert.match(missing.json.error.message, /orderId/);
  const bad = await rest('POST', '/websocket/notifications/order-status-update', { token: staff, body: { orderId: '1', aliasId: 'A', userId: 1, status: 'teleported' } });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error.message, /status/);
  const notjson = await rest('POST', url, { token: staff, raw: '{oops', headers: { 'Content-Type': 'application/json' } });
  assert.equal(notjson.status, 400);
  const empty = await rest('POST', url, { token: staff });
  assert.equal(empty.status, 400);
  const inv = await rest('POST', '/websocket/notifications/inventory-alert', { token: staff, body: { productId: 'x', productName: 'p', quantity: 1, threshold: 1, status: 'low_stock' } });
  assert.equal(inv.status, 400);
  assert.match(inv.json.error.message, /productId/);
  assert.equal((await rest('POST', '/websocket/broadcast', { token: staff, body: { title: 't', message: 'm' } })).status, 403);
  const svc = await rest('POST', '/websocket/notifications/order-status-update', { token: service, body: { orderId: 'svc-1', aliasId: 'A', userId: 3, status: 'confirmed', previousStatus: 'created' } });
  assert.equal(svc.status, 202, svc.text);
  assert.match(svc.json.eventId, /^[0-9a-f-]{36}$/);
});

test('a broadcast reaches every connected client', async () => {
  const clients = await Promise.all([cust1, cust2, staff, admin].map((t) => connect({ token: t })));
  const title = 'all-' + uniq();
  const r = await rest('POST', '/websocket/broadcast', { token: admin, body: { type: 'system', title, message: 'Scheduled maintenance', data: { window: '2h' } } });
  assert.equal(r.status, 202);
  for (const c of clients) {
    const f = await c.event('system_notification', 5000, (d) => d.data.title === title);
    assert.equal(f.data.type, 'system_notification');
    assert.deepEqual(f.data.data.data, { window: '2h' });
    assert.equal(f.data.data.eventId, r.json.eventId);
  }
  clients.forEach((c) => c.close());
});

test('a poisoned record goes to the DLQ and the next event is still delivered', async () => {
  const c = await connect({ token: staff });
  c.send('subscribe_to_orders');
  await c.event('subscription_confirmed');
  const dlqBefore = await metric('oms_dlq_records_total');
  kcat(['-P', '-t', env.TOPIC_ORDERS, '-K', ':'], 'poison:\u00c3\u0001garbage-not-avro\n');
  const id = await orderFor(1);
  await c.event('order_update', 5000, (d) => d.data.orderId === id);
  let dlq = '';
  for (let i = 0; i < 50 && !dlq.includes('oms.error='); i++) {
    dlq = kcat(['-C', '-t', env.TOPIC_DLQ, '-e', '-q', '-f', '%k %h\n']);
    if (!dlq.includes('oms.error=')) await sleep(100);
  }
  assert.match(dlq, /^poison .*oms\.error=/m);
  assert.match(dlq, new RegExp(`oms\\.source\\.topic=${env.TOPIC_ORDERS.replace(/\./g, '\\.')}`));
  assert.ok((await metric('oms_dlq_records_total')) > dlqBefore);
  assert.ok((await metric('oms_records_undecodable_total')) >= 1);
  c.close();
});

test('a client that never reads is closed with 1013; a normal client keeps receiving', async () => {
  const slow = await connect({ token: staff });
  const fast = await connect({ token: staff });
  for (const c of [slow, fast]) c.send('subscribe_to_orders');
  await slow.event('subscription_confirmed');
  await fast.event('subscription_confirmed');
  slow.ws._socket.pause(); // stop reading: the kernel buffers fill, then omsd's queue
  const overflowBefore = await metric('oms_queue_overflow_closes_total');
  const fastBefore = fast.all('order_update').length;
  // ~45,000 order frames (~18 MB): more than the kernel's socket buffers hold
  // at a rate a reading client keeps up with (asynchronously: this process
  // must go on reading meanwhile); the one that never reads still overflows
  // (its queue bound, 4096, plus the kernel's buffers)
  // (10,000 events/s: a reading client keeps up even on a busy machine)
  const summary = JSON.parse(await producerAsync(['simulate', '--rate', '10000', '--count', '100000', '--seed', '3', '--json-summary']));
  const orders = summary.byType.OrderCreated + summary.byType.OrderStatusChanged;
  const deadline = Date.now() + 60000;
  while (fast.all('order_update').length - fastBefore < orders && Date.now() < deadline && !fast.closed) await sleep(100);
  assert.equal(fast.closed, null, 'the reading client stays connected');
  assert.equal(fast.all('order_update').length - fastBefore, orders);
  assert.ok((await metric('oms_queue_overflow_closes_total')) > overflowBefore);
  slow.ws._socket.resume();
  const closed = await slow.waitClose(20000);
  assert.equal(closed.code, 1013);
  fast.close();
});

test('frames queued for a connection go out several to one write, at the end of the loop turn, each intact', async () => {
  // a replay queues many frames at once (deterministic, unlike a live
  // burst whose frames may each find the connection idle)
  const live = await connect({ token: staff });
  live.send('subscribe_to_orders');
  const since = (await live.event('subscription_confirmed')).data.positions;
  const summary = JSON.parse(await producerAsync(['simulate', '--rate', 'max', '--count', '3000', '--seed', '11', '--json-summary']));
  const orders = summary.byType.OrderCreated + summary.byType.OrderStatusChanged;
  let deadline = Date.now() + 60000;
  while (live.all('order_update').length < orders && Date.now() < deadline) await sleep(100);
  assert.equal(live.all('order_update').length, orders, 'the live client got them all');
  const writesBefore = await metric('oms_websocket_writes_total');
  const directBefore = await metric('oms_websocket_writes_total{path="direct"}');
  const framesBefore = await metric('oms_websocket_frames_total');
  const c = await connect({ token: staff });
  c.send('subscribe_to_orders');
  await c.event('subscription_confirmed');
  c.send('resume', { since });
  deadline = Date.now() + 60000;
  while (c.all('resumed').length === 0 && Date.now() < deadline) await sleep(50);
  assert.equal(c.all('resumed')[0].data.recovered, true);
  const mine = c.all('order_update');
  assert.equal(mine.length, orders, 'every order event replayed, once');
  // intact: each frame parsed as its own JSON message, the same as live
  // (a replay goes partition by partition: compare as sets)
  const key = (e) => JSON.stringify(e.data);
  assert.deepEqual(mine.map(key).sort(), live.all('order_update').map(key).sort());
  const writes = (await metric('oms_websocket_writes_total')) - writesBefore;
  const frames = (await metric('oms_websocket_frames_total')) - framesBefore;
  assert.ok(frames >= orders, `frames ${frames} >= ${orders}`);
  assert.ok(writes * 5 <= frames, `several frames to a write: ${writes} writes for ${frames} frames`);
  // written at the end of the loop turn (not only after a WRITEABLE round
  // trip through epoll, which comes when the socket is full)
  const direct = (await metric('oms_websocket_writes_total{path="direct"}')) - directBefore;
  assert.ok(direct >= 1, `direct writes: ${direct} of ${writes}`);
  live.close();
  c.close();
});

test('/metrics counters move', async () => {
  const before = await metric('oms_events_consumed_total');
  const deliveredBefore = await metric('oms_events_delivered_total');
  const c = await connect({ token: admin });
  const m = await marker();
  await c.event('system_notification', 5000, isMarker(m));
  await sleep(100);
  assert.ok((await metric('oms_events_consumed_total')) > before);
  assert.ok((await metric('oms_events_delivered_total')) > deliveredBefore);
  const text = (await rest('GET', '/metrics')).text;
  for (const name of ['oms_connections', 'oms_subscriptions', 'oms_events_dropped_total', 'oms_consumer_lag', 'oms_dlq_records_total', 'oms_queue_overflow_closes_total']) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
  // event age at write time: a histogram of the live deliveries
  assert.match(text, /^# TYPE oms_delivery_age_seconds histogram$/m);
  const count = Number(/^oms_delivery_age_seconds_count (\d+)$/m.exec(text)[1]);
  const inf = Number(/^oms_delivery_age_seconds_bucket\{le="\+Inf"\} (\d+)$/m.exec(text)[1]);
  assert.ok(count > 0, 'deliveries were timed');
  assert.equal(inf, count);
  let prev = 0;
  for (const m2 of text.matchAll(/^oms_delivery_age_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)) {
    assert.ok(Number(m2[2]) >= prev, `buckets are cumulative at le=${m2[1]}`);
    prev = Number(m2[2]);
  }
  const stats = (await rest('GET', '/websocket/stats', { token: admin })).json;
  assert.equal(stats.deliveryAgeMs.count, count);
  assert.ok(stats.deliveryAgeMs.p50 >= 0 && stats.deliveryAgeMs.p50 <= stats.deliveryAgeMs.p99,
    JSON.stringify(stats.deliveryAgeMs));
  assert.ok(stats.deliveryAgeMs.p99 < 10000, 'a live push on loopback is not seconds old');
  c.close();
});

test('token expiry closes with 4401 unless refreshed', async () => {
  const short = await connect({ token: tok('customer', 1, { ttl: 2 }) });
  const refreshed = await connect({ token: tok('customer', 1, { ttl: 2 }) });
  refreshed.send('refresh_token', { token: tok('customer', 1, { ttl: 600 }) });
  await refreshed.event('token_refreshed');
  refreshed.send('refresh_token', { token: tok('customer', 2, { ttl: 600 }) });
  assert.equal((await refreshed.event('error')).data.code, 'forbidden');
  const closed = await short.waitClose(12000); /* exp + 5 s of leeway */
  assert.equal(closed.code, 4401);
  assert.ok(short.all('error').some((f) => f.data.code === 'token_expired'));
  await sleep(1500);
  assert.equal(refreshed.closed, null);
  refreshed.send('ping');
  await refreshed.event('pong');
  refreshed.close();
});

test('SIGTERM closes clients with 1001', async () => {
  const c = await connect({ token: admin });
  process.kill(Number(env.OMSD_PID), 'SIGTERM');
  const closed = await c.waitClose(5000);
  assert.equal(closed.code, 1001);
});
