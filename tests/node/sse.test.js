'use strict';
// Server-Sent Events (DESIGN §3.5, issue #19) with a plain HTTP client that
// does what EventSource does (parses the stream, keeps the last id, sends it
// back as Last-Event-ID when it reconnects), against instances A and B
// (0720-sse.sh; B keeps 20 events of history, so resuming there reads Kafka,
// and a queue of 64). The oracle: a plain-WebSocket witness on C that never
// disconnects.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { env, tok, sleep, producerAsync, connect } = require('./lib');
const { parsePos, assertSameEvents, assertOrdered } = require('./events-assert');

const PORT_A = Number(env.PORT_A);
const PORT_B = Number(env.PORT_B);
const CUSTOMER = 7;

// One stream: every SSE event {id, event, data} and comments, as parsed.
function stream(port, { token, query = '', headers = {}, lastEventId } = {}) {
  return new Promise((resolve, reject) => {
    const h = { Accept: 'text/event-stream', ...headers };
    if (token) h.Authorization = 'Bearer ' + token;
    if (lastEventId) h['Last-Event-ID'] = lastEventId;
    const req = http.get({ host: '127.0.0.1', port, path: '/events/stream' + query, headers: h, agent: false }, (res) => {
      const s = { res, status: res.statusCode, headers: res.headers, events: [], comments: [], retry: null, ended: false, aborted: false, body: '' };
      if (res.statusCode !== 200) {
        res.setEncoding('utf8');
        res.on('data', (d) => (s.body += d));
        res.on('end', () => resolve(s));
        return;
      }
      let buf = '';
      let cur = {};
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === '') {
            if (cur.event || cur.data !== undefined) {
              const e = { id: cur.id, event: cur.event || 'message', data: JSON.parse(cur.data) };
              s.events.push(e);
              if (e.id !== undefined) s.lastId = e.id;
            }
            cur = {};
          } else if (line.startsWith(':')) s.comments.push(line);
          else {
            const c = line.indexOf(':');
            const k = line.slice(0, c);
            const v = line.slice(c + 1).replace(/^ /, '');
            if (k === 'data') cur.data = cur.data === undefined ? v : cur.data + '\n' + v;
            else if (k === 'retry') s.retry = Number(v);
            else cur[k] = v;
          }
        }
      });
      res.on('end', () => { s.ended = true; });
      res.on('aborted', () => { s.aborted = true; });
      res.on('error', () => { s.aborted = true; });
      res.on('close', () => { s.closed = true; });
      s.close = () => req.destroy();
      resolve(s);
    });
    req.on('error', reject);
  });
}

const isEvent = (d) => d && typeof d === 'object' && typeof d.id === 'string' && typeof d.type === 'string';
const rte = (s) => s.events.filter((e) => isEvent(e.data)).map((e) => e.data);

async function until(cond, ms, what) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

let seed = 900;
async function produce(n) {
  const rec = path.join(env.T, `produce-${seed}.jsonl`);
  await producerAsync(['simulate', '--count', String(n), '--rate', 'max', '--duration', '0',
    '--users', '10', '--products', '8', '--seed', String(seed++), '--record', rec]);
  return fs.readFileSync(rec, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

let W;
const wgot = () => W.frames.filter((f) => isEvent(f.data)).map((f) => f.data);
async function caughtUp(recs, ms = 30000) {
  const want = recs.filter((r) => r.topic !== env.TOPIC_NOTIFICATIONS).map((r) => `${r.topic}:${r.partition}:${r.offset}`);
  const deadline = Date.now() + ms;
  for (;;) {
    const have = new Set(wgot().map((e) => e.id));
    const missing = want.filter((i) => !have.has(i));
    if (missing.length === 0) break;
    if (Date.now() > deadline) throw new Error(`witness misses ${missing.length} events`);
    await sleep(100);
  }
  await sleep(300);
}

test.before(async () => {
  W = await connect({ token: tok('staff', 9001) }); // lib's connect: OMS_PORT = C
  for (const [ev, type] of [['subscribe_to_orders', 'order'], ['subscribe_to_inventory', 'inventory']]) {
    W.send(ev);
    await W.event('subscription_confirmed', 5000, (d) => d.type === type);
  }
  await caughtUp(await produce(20));
});
test.after(() => W.close());

test('the stream: headers, retry, connected with an id, heartbeat comments', async () => {
  const s = await stream(PORT_A, { token: tok('staff', 9201), query: '?subscribe=orders,inventory' });
  assert.equal(s.status, 200);
  assert.match(s.headers['content-type'], /^text\/event-stream/);
  assert.equal(s.headers['transfer-encoding'], 'chunked', 'HTTP/1.1 chunked: the connection outlives the stream');
  assert.equal(s.headers['cache-control'], 'no-store');
  assert.equal(s.headers['x-accel-buffering'], 'no');
  await until(() => s.events.length >= 1, 5000, 'connected');
  assert.equal(s.events[0].event, 'connected');
  assert.equal(s.events[0].data.userId, 9201);
  assert.match(s.events[0].id, /^3[A-Za-z0-9_-]{20,}$/, 'an id (class 3: orders and inventory) from the start');
  assert.equal(s.retry, 1000);
  await until(() => s.comments.includes(': ping'), 3000, 'a heartbeat comment');
  s.close();
});

test('refusals: no token, bad token, bad subscribe, a customer asking inventory, foreign origin, method, Accept', async () => {
  const cases = [
    [{}, 401, 'unauthorized'],
    [{ token: 'nope' }, 401, null],
    [{ token: tok('staff', 1), query: '?subscribe=orders,bogus' }, 400, 'bad_request'],
    [{ token: tok('customer', CUSTOMER), query: '?subscribe=inventory' }, 403, 'forbidden'],
    [{ token: tok('staff', 1), headers: { Origin: 'http://evil.example' } }, 403, 'forbidden_origin'],
    [{ token: tok('staff', 1), headers: { Accept: 'application/json' } }, 406, 'not_acceptable'],
  ];
  for (const [opts, status, code] of cases) {
    const s = await stream(PORT_A, opts);
    assert.equal(s.status, status, JSON.stringify(opts).slice(0, 80));
    const body = JSON.parse(s.body);
    if (code) assert.equal(body.error.code, code);
    assert.ok(body.error.message);
  }
  const r = await fetch(`http://127.0.0.1:${PORT_A}/events/stream`, { method: 'POST', headers: { Authorization: 'Bearer ' + tok('staff', 1) } });
  assert.equal(r.status, 405);
  assert.equal(r.headers.get('allow'), 'GET, OPTIONS');
  // a CORS preflight, as for the REST API
  const pre = await fetch(`http://127.0.0.1:${PORT_A}/events/stream`, { method: 'OPTIONS', headers: {
    Origin: 'http://allowed.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), 'http://allowed.example');
  // ?token= (browsers: EventSource sets no headers), an allowed origin gets CORS
  const q = await stream(PORT_A, { query: `?token=${encodeURIComponent(tok('staff', 9202))}`, headers: { Origin: 'http://allowed.example' } });
  assert.equal(q.status, 200);
  assert.equal(q.headers['access-control-allow-origin'], 'http://allowed.example');
  q.close();
});

test('roles and subscriptions: the same events as the WebSocket, same JSON', async () => {
  const st = await stream(PORT_A, { token: tok('staff', 9203), query: '?subscribe=orders,inventory' });
  const k = await stream(PORT_A, { token: tok('customer', CUSTOMER), query: '?subscribe=orders' });
  const none = await stream(PORT_A, { token: tok('staff', 9204) });
  await until(() => st.events.length && k.events.length && none.events.length, 5000, 'connected');
  const start = wgot().length;
  await caughtUp(await produce(100));
  await sleep(300);
  const want = wgot().slice(start);
  assertSameEvents(rte(st), want, 'staff stream');
  assertOrdered(rte(st), 'staff stream');
  // byte for byte the WebSocket frame's data
  const byId = new Map(want.map((e) => [e.id, e]));
  for (const e of rte(st)) assert.deepEqual(e, byId.get(e.id));
  for (const e of st.events.filter((x) => isEvent(x.data))) {
    assert.equal(e.event, e.data.type.startsWith('order') ? 'order_update' : e.data.type === 'inventory_update' ? 'inventory_update' : e.event);
    assert.match(e.id, /^3[A-Za-z0-9_-]{20,}$/);
  }
  assert.ok(rte(k).length > 0);
  for (const e of rte(k)) assert.ok(e.userId === CUSTOMER || e.type === 'system_notification', `customer got ${e.id}`);
  assert.ok(!rte(none).some((e) => e.type === 'order_status' || e.type === 'inventory_update'), 'no subscription, no orders');
  for (const s of [st, k, none]) s.close();
});

test('filters in the URL (?filter_orders=, ?filter_inventory=): only the matching events; bad ones refused', async () => {
  const statuses = ['shipped', 'delivered'];
  const products = [3, 5];
  const fo = encodeURIComponent(JSON.stringify({ status: statuses }));
  const fi = encodeURIComponent(JSON.stringify({ productId: products }));
  const s = await stream(PORT_A, { token: tok('staff', 9205), query: `?subscribe=orders,inventory&filter_orders=${fo}&filter_inventory=${fi}` });
  assert.equal(s.status, 200, s.body);
  await until(() => s.events.length >= 3, 5000, 'connected and two subscription_confirmed');
  // after connected, each subscription with its filter in normalized form (sorted), no id
  assert.deepEqual(s.events.slice(0, 3).map((e) => e.event), ['connected', 'subscription_confirmed', 'subscription_confirmed']);
  const conf = Object.fromEntries(s.events.slice(1, 3).map((e) => [e.data.type, e.data.filter]));
  assert.deepEqual(conf, { order: { status: ['delivered', 'shipped'] }, inventory: { productId: [3, 5] } });
  for (const e of s.events.slice(1, 3)) assert.equal(e.id, undefined, 'no id: not a position');
  const start = wgot().length;
  await caughtUp(await produce(200));
  await sleep(300);
  const want = wgot().slice(start).filter((e) =>
    e.type === 'order_status' ? statuses.includes(e.data.status)
      : e.type === 'inventory_update' ? products.includes(e.data.productId) : true);
  assert.ok(want.some((e) => e.type === 'order_status'), 'some orders pass the filter');
  assert.ok(wgot().slice(start).length > want.length, 'the filter leaves some out');
  assertSameEvents(rte(s), want, 'filtered stream');
  s.close();
  const bad = [
    [`?subscribe=orders&filter_orders=${encodeURIComponent('{"nope":1}')}`, /nope/],
    ['?subscribe=orders&filter_orders=not-json', /filter_orders: not JSON/],
    [`?subscribe=orders&filter_inventory=${fi}`, /filter_inventory without subscribe=inventory/],
  ];
  for (const [query, msg] of bad) {
    const r = await stream(PORT_A, { token: tok('staff', 9206), query });
    assert.equal(r.status, 400, query);
    const body = JSON.parse(r.body);
    assert.equal(body.error.code, 'bad_filter', query);
    assert.match(body.error.message, msg, query);
  }
});

test('omsd killed mid-stream: the client reconnects to another instance with Last-Event-ID and misses nothing', async () => {
  const token = tok('staff', 9205);
  const s1 = await stream(PORT_A, { token, query: '?subscribe=orders,inventory' });
  await until(() => s1.events.length >= 1, 5000, 'connected');
  const start = wgot().length;
  await caughtUp(await produce(30));
  await until(() => rte(s1).length >= wgot().length - start, 10000, 'live on A');
  // a producer keeps going while A dies
  const during = produce(300);
  await sleep(150);
  process.kill(Number(env.PID_A), 'SIGKILL');
  await until(() => s1.aborted || s1.closed || s1.ended, 5000, 'the stream breaks');
  await caughtUp(await during);
  const last = s1.lastId;
  assert.ok(last, 'an id to resume from');
  const s2 = await stream(PORT_B, { token, query: '?subscribe=orders,inventory', lastEventId: last });
  assert.equal(s2.status, 200);
  await until(() => s2.events.some((e) => e.event === 'resumed'), 20000, 'resumed');
  const res = s2.events.find((e) => e.event === 'resumed');
  assert.equal(res.data.recovered, true);
  assert.equal(res.id, undefined, 'resumed carries no id');
  assert.equal(s2.events[0].event, 'connected');
  assert.equal(s2.events[0].id, undefined, 'connected carries no id on a resume (the replay comes after it)');
  // then live
  await caughtUp(await produce(40));
  await until(() => rte(s1).length + rte(s2).length >= wgot().length - start, 10000, 'all events');
  await sleep(300);
  const got = [...rte(s1), ...rte(s2)];
  assertSameEvents(got, wgot().slice(start), 'across the kill');
  assertOrdered(got, 'across the kill');
  assert.equal(res.data.replayed, s2.events.slice(0, s2.events.indexOf(res)).filter((e) => isEvent(e.data)).length);
  // each replayed event's id resumes from it: a second reconnect from the middle of the replay
  const mid = s2.events.filter((e) => isEvent(e.data))[Math.floor(res.data.replayed / 2)];
  s2.close();
  const s3 = await stream(PORT_B, { token, query: '?subscribe=orders,inventory', lastEventId: mid.id });
  await until(() => s3.events.some((e) => e.event === 'resumed'), 20000, 'resumed again');
  const upTo = s2.events.indexOf(mid);
  const again = [...rte(s1), ...s2.events.slice(0, upTo + 1).filter((e) => isEvent(e.data)).map((e) => e.data), ...rte(s3)];
  assertSameEvents(again, wgot().slice(start), 'from an id in the middle of a replay');
  s3.close();
});

test('an edited Last-Event-ID resumes nothing: resumed {recovered: false}, then live', async () => {
  const token = tok('customer', CUSTOMER);
  const s1 = await stream(PORT_B, { token, query: '?subscribe=orders' });
  await until(() => s1.events.length >= 1, 5000, 'connected');
  const id = s1.events[0].id;
  s1.close();
  await caughtUp(await produce(50));
  const edited = id.slice(0, 8) + (id[8] === 'A' ? 'B' : 'A') + id.slice(9);
  const s2 = await stream(PORT_B, { token, query: '?subscribe=orders', lastEventId: edited });
  await until(() => s2.events.some((e) => e.event === 'resumed'), 5000, 'resumed');
  assert.equal(s2.events.find((e) => e.event === 'resumed').data.recovered, false);
  await sleep(300);
  assert.deepEqual(rte(s2), [], 'nothing replayed');
  await caughtUp(await produce(300));
  await until(() => rte(s2).length > 0, 5000, 'live events');
  for (const e of rte(s2)) assert.ok(e.userId === CUSTOMER || e.type === 'system_notification', `customer got ${e.id}`);
  s2.close();
});

test('a slow client is dropped at server.queue_limit and resumes without loss', async () => {
  const token = tok('staff', 9206);
  const s1 = await stream(PORT_B, { token, query: '?subscribe=orders,inventory' });
  await until(() => s1.events.length >= 1, 5000, 'connected');
  const start = wgot().length;
  s1.res.socket.pause();
  await caughtUp(await produce(3000), 60000);
  s1.res.socket.resume();
  await until(() => s1.aborted || s1.closed || s1.ended, 10000, 'dropped');
  assert.ok(rte(s1).length < wgot().length - start, 'it lost events');
  const s2 = await stream(PORT_B, { token, query: '?subscribe=orders,inventory', lastEventId: s1.lastId });
  await until(() => s2.events.some((e) => e.event === 'resumed'), 20000, 'resumed');
  assert.equal(s2.events.find((e) => e.event === 'resumed').data.recovered, true);
  await sleep(300);
  assertSameEvents([...rte(s1), ...rte(s2)], wgot().slice(start), 'slow client');
  s2.close();
});

test('SIGTERM ends a stream with its last chunk (not a broken connection)', async () => {
  const s = await stream(PORT_B, { token: tok('staff', 9207) });
  await until(() => s.events.length >= 1, 5000, 'connected');
  process.kill(Number(env.PID_B), 'SIGTERM');
  await until(() => s.ended || s.aborted, 10000, 'the end of the stream');
  assert.equal(s.ended, true, 'a clean end');
  assert.equal(s.aborted, false);
});
