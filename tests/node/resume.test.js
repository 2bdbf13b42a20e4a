'use strict';
// Positions, resume after reconnect, many instances (DESIGN §3.4-3.5),
// against three omsd instances A, B, C sharing the topics (0600-resume.sh).
// B keeps a 20-event history, so its resumes read Kafka back.
// The oracle: witnesses that never disconnect (a staff client and a
// customer client on B) receive every event they are entitled to live; a
// client that resumes must end up with exactly the same events, each once,
// in order per partition.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const WebSocket = require('ws');
const { env, tok, sleep, producerAsync } = require('./lib');

const PORTS = { A: Number(env.PORT_A), B: Number(env.PORT_B), C: Number(env.PORT_C) };
const TOPICS = [env.TOPIC_ORDERS, env.TOPIC_INVENTORY, env.TOPIC_NOTIFICATIONS];
const STAFF = tok('staff', 9001);
const CUSTOMER = 7;

function parsePos(id) {
  const i = id.lastIndexOf(':');
  const j = id.lastIndexOf(':', i - 1);
  return { key: id.slice(0, i), topic: id.slice(0, j), part: Number(id.slice(j + 1, i)), offset: BigInt(id.slice(i + 1)) };
}

// A client that survives reconnects: it keeps every event it got (across
// connections) and its highest position per partition, and resumes as the
// web console does.
class RClient {
  constructor(name, token, subs) {
    this.name = name;
    this.token = token;
    this.subs = subs; // ['orders', 'inventory']
    this.got = []; // RealTimeEvent frames, across connections
    this.pos = new Map(); // TOPIC:PART -> BigInt offset
    this.frames = []; // this connection's frames
    this.waiters = [];
    this.ws = null;
    this.closed = null;
    this.holding = false; // a reconnect: positions come from resume, not from the server's
  }
  note(id) {
    const p = parsePos(id);
    const cur = this.pos.get(p.key);
    if (cur === undefined || p.offset > cur) this.pos.set(p.key, p.offset);
  }
  open(port, { reconnect = false, perMessageDeflate = true } = {}) {
    this.frames = [];
    this.closed = null;
    this.holding = reconnect;
    this.held = [];
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/events`, {
        headers: { Authorization: 'Bearer ' + this.token }, maxPayload: 64 << 20, perMessageDeflate,
      });
      this.ws = ws;
      ws.on('message', (m) => {
        const f = JSON.parse(m.toString());
        this.frames.push(f);
        if (f.data && typeof f.data.id === 'string' && f.data.type) {
          this.got.push(f.data);
          // until `resumed`, live events do not move the positions the
          // resume is about to name (as the web console does)
          if (this.holding) this.held.push(f.data.id);
          else this.note(f.data.id);
        } else if (!this.holding && f.data && Array.isArray(f.data.positions)) {
          for (const p of f.data.positions) this.note(p);
        }
        this.waiters = this.waiters.filter((w) => !(w.pred(f) && (w.resolve(f), true)));
      });
      ws.on('close', (code) => {
        this.closed = { code };
        for (const w of this.waiters.splice(0)) w.reject(new Error(`${this.name}: closed ${code}`));
      });
      ws.on('error', reject);
      this.next((f) => f.event === 'connected', 5000).then(resolve, reject);
    }).then(async () => {
      for (const s of this.subs) {
        this.send(s === 'orders' ? 'subscribe_to_orders' : 'subscribe_to_inventory');
        await this.next((f) => f.event === 'subscription_confirmed' && f.data.type === (s === 'orders' ? 'order' : 'inventory'));
      }
    });
  }
  next(pred, ms = 10000) {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.name}: timed out`)), ms);
      this.waiters.push({ pred, resolve: (f) => { clearTimeout(t); resolve(f); }, reject });
    });
  }
  send(event, data) {
    this.ws.send(JSON.stringify(data === undefined ? { event } : { event, data }));
  }
  since() {
    return [...this.pos].map(([k, v]) => `${k}:${v}`);
  }
  // resume; returns {resumed, replayed: the events between the request and the answer}
  async resume(since = this.since(), ms = 30000) {
    const from = this.frames.length;
    this.send('resume', { since });
    const r = await this.next((f) => (f.event === 'resumed' || f.event === 'error') && this.frames.indexOf(f) >= from, ms);
    this.holding = false;
    for (const id of this.held.splice(0)) this.note(id);
    const at = this.frames.indexOf(r);
    const replayed = this.frames.slice(from, at).filter((f) => f.data && f.data.id && f.data.type).map((f) => f.data);
    return { resumed: r, replayed };
  }
  async close() {
    if (!this.ws || this.closed) return;
    const done = new Promise((r) => this.ws.once('close', r));
    this.ws.close();
    await done;
  }
}

// events of `all` after the positions in since (a Map of TOPIC:PART -> offset)
function after(all, since) {
  return all.filter((e) => {
    const p = parsePos(e.id);
    const s = since.get(p.key);
    return s === undefined ? false : p.offset > s;
  });
}

function assertSameEvents(got, want, what) {
  const ids = got.map((e) => e.id);
  assert.equal(new Set(ids).size, ids.length, `${what}: no duplicates`);
  const wantIds = new Set(want.map((e) => e.id));
  const missing = [...wantIds].filter((i) => !ids.includes(i));
  const extra = ids.filter((i) => !wantIds.has(i));
  assert.deepEqual({ missing: missing.slice(0, 5), extra: extra.slice(0, 5), n: ids.length },
    { missing: [], extra: [], n: wantIds.size }, `${what}: exactly the events entitled to`);
}

function assertOrdered(events, what) {
  const last = new Map();
  for (const e of events) {
    const p = parsePos(e.id);
    const l = last.get(p.key);
    assert.ok(l === undefined || p.offset > l, `${what}: ${e.id} after ${p.key}:${l}`);
    last.set(p.key, p.offset);
  }
}

let seed = 100;
async function produce(n, rate) {
  const rec = path.join(env.T, `produce-${seed}.jsonl`);
  await producerAsync(['simulate', '--count', String(n), '--rate', String(rate), '--duration', '0',
    '--users', '10', '--products', '8', '--seed', String(seed++), '--record', rec]);
  return fs.readFileSync(rec, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

// wait until the witness has every order and inventory record of recs
async function caughtUp(w, recs, ms = 30000) {
  const want = recs.filter((r) => r.topic !== env.TOPIC_NOTIFICATIONS).map((r) => `${r.topic}:${r.partition}:${r.offset}`);
  const deadline = Date.now() + ms;
  for (;;) {
    if (w.closed) throw new Error(`${w.name} was closed (${w.closed.code})`);
    const have = new Set(w.got.map((e) => e.id));
    const missing = want.filter((i) => !have.has(i));
    if (missing.length === 0) break;
    if (Date.now() > deadline) throw new Error(`${w.name} misses ${missing.length} events, e.g. ${missing[0]}`);
    await sleep(100);
  }
  await sleep(300); // notifications come on their own partitions
}

async function metric(port, name) {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  let sum = 0;
  for (const line of (await r.text()).split('\n'))
    if (line.startsWith(name + ' ') || line.startsWith(name + '{')) sum += Number(line.split(' ').pop());
  return sum;
}
async function metricLine(port, line) {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  const l = (await r.text()).split('\n').find((x) => x.startsWith(line + ' '));
  return l ? Number(l.split(' ').pop()) : NaN;
}
async function get(port, p, token = STAFF) {
  const r = await fetch(`http://127.0.0.1:${port}${p}`, { headers: { Authorization: 'Bearer ' + token } });
  return { status: r.status, json: await r.json() };
}

const W = new RClient('witness', STAFF, ['orders', 'inventory']);
const KW = new RClient('customer witness', tok('customer', CUSTOMER), ['orders']);

test.before(async () => {
  await W.open(PORTS.B);
  await KW.open(PORTS.B);
  await caughtUp(W, await produce(40, 'max'));
});
test.after(async () => {
  await W.close();
  await KW.close();
});

test('1,000 events missed while away for 5 s: resume replays exactly those, in order, then live', async () => {
  const S = new RClient('staff', tok('staff', 9002), ['orders', 'inventory']);
  const K = new RClient('customer', tok('customer', CUSTOMER), ['orders']);
  await S.open(PORTS.A);
  await K.open(PORTS.A);
  const startW = W.got.length, startKW = KW.got.length;
  await caughtUp(W, await produce(30, 'max'));
  assertSameEvents(S.got, W.got.slice(startW), 'staff live');
  await S.close();
  await K.close();
  const sinceS = new Map(S.pos), sinceK = new Map(K.pos);
  const t0 = Date.now();
  await caughtUp(W, await produce(1000, 200));
  assert.ok(Date.now() - t0 >= 4000, 'the gap took about 5 s');
  await S.open(PORTS.A, { reconnect: true });
  await K.open(PORTS.A, { reconnect: true });
  const rs = await S.resume();
  assert.equal(rs.resumed.event, 'resumed');
  assert.equal(rs.resumed.data.recovered, true);
  const wantS = after(W.got, sinceS);
  // staff gets the order, inventory and system events of the 1,000 (not other users' notifications)
  assert.ok(wantS.length >= 600, `staff missed ${wantS.length} events`);
  assert.equal(rs.resumed.data.replayed, rs.replayed.length, 'replayed counts what was sent');
  assertSameEvents(rs.replayed, wantS, 'staff replay');
  assertOrdered(rs.replayed, 'staff replay');
  const rk = await K.resume();
  assert.equal(rk.resumed.data.recovered, true);
  const wantK = after(KW.got.slice(startKW), sinceK);
  assert.ok(wantK.length > 0, 'the customer missed some of its own events');
  assertSameEvents(rk.replayed, wantK, 'customer replay');
  for (const e of rk.replayed) assert.ok(e.userId === CUSTOMER || e.type === 'system_notification', `customer got ${e.id} of user ${e.userId}`);
  // then live, no gap, no duplicate
  const liveFrom = new Map(W.pos);
  await caughtUp(W, await produce(50, 'max'));
  await sleep(300);
  assertSameEvents(S.got, W.got.slice(startW), 'staff across the reconnect');
  assertOrdered(S.got, 'staff across the reconnect');
  assertSameEvents(after(S.got, liveFrom), after(W.got, liveFrom), 'staff live after resume');
  assertSameEvents(K.got, KW.got.slice(startKW), 'customer across the reconnect');
  assert.ok(await metricLine(PORTS.A, 'oms_resumes_total{outcome="memory"}') >= 2, 'A served them from memory');
  await S.close();
  await K.close();
});

test('a customer resuming with positions of everything gets only its own events', async () => {
  const K = new RClient('customer', tok('customer', CUSTOMER), ['orders']);
  await K.open(PORTS.A);
  // positions from well back: every partition of every topic, as staff would send
  const since = W.since().map((s) => { const p = parsePos(s); return `${p.key}:${p.offset > 200n ? p.offset - 200n : -1n}`; });
  const r = await K.resume(since);
  assert.equal(r.resumed.data.recovered, true);
  assert.ok(r.replayed.length > 0);
  for (const e of r.replayed) assert.ok(e.userId === CUSTOMER || e.type === 'system_notification', `customer got ${e.id} of user ${e.userId}`);
  // inventory events are not a customer's at all
  assert.ok(!r.replayed.some((e) => e.type === 'inventory_update'));
  await K.close();
});

test('reconnecting to another instance (B, whose history is too short) resumes from Kafka', async () => {
  const S = new RClient('staff', tok('staff', 9003), ['orders', 'inventory']);
  await S.open(PORTS.A);
  const startW = W.got.length;
  await caughtUp(W, await produce(20, 'max'));
  await S.close();
  const since = new Map(S.pos);
  await caughtUp(W, await produce(500, 'max'));
  const before = await metricLine(PORTS.B, 'oms_resumes_total{outcome="kafka"}');
  await S.open(PORTS.B, { reconnect: true });
  const r = await S.resume();
  assert.equal(r.resumed.data.recovered, true);
  assertSameEvents(r.replayed, after(W.got, since), 'replay on B');
  assertOrdered(r.replayed, 'replay on B');
  assert.equal(await metricLine(PORTS.B, 'oms_resumes_total{outcome="kafka"}'), before + 1, 'B read Kafka back');
  await caughtUp(W, await produce(30, 'max'));
  await sleep(300);
  assertSameEvents(S.got, W.got.slice(startW), 'staff across instances');
  await S.close();
});

test('ten clients resuming the same gap at once from Kafka (one shared read) each get all of it', async () => {
  const cs = [];
  for (let i = 0; i < 10; i++) cs.push(new RClient(`staff ${i}`, tok('staff', 9100 + i), ['orders', 'inventory']));
  for (const c of cs) await c.open(PORTS.B);
  await caughtUp(W, await produce(10, 'max'));
  await Promise.all(cs.map((c) => c.close()));
  const since = cs.map((c) => new Map(c.pos));
  await caughtUp(W, await produce(2000, 'max'));
  const before = await metricLine(PORTS.B, 'oms_resumes_total{outcome="kafka"}');
  for (const c of cs) await c.open(PORTS.B, { reconnect: true });
  const rs = await Promise.all(cs.map((c) => c.resume()));
  for (let i = 0; i < cs.length; i++) {
    assert.equal(rs[i].resumed.data.recovered, true);
    const want = after(W.got, since[i]);
    assert.ok(want.length > 1000);
    assertSameEvents(rs[i].replayed, want, cs[i].name);
    assertOrdered(rs[i].replayed, cs[i].name);
  }
  assert.equal(await metricLine(PORTS.B, 'oms_resumes_total{outcome="kafka"}'), before + cs.length);
  await Promise.all(cs.map((c) => c.close()));
});

test('a slow client closed with 1013 resumes without loss', async () => {
  const S = new RClient('slow', tok('staff', 9004), ['orders', 'inventory']);
  // uncompressed: 15,000 compressed events (~3.7 MB) fit in loopback's
  // socket buffers, and omsd's queue would never fill
  await S.open(PORTS.A, { perMessageDeflate: false });
  const startW = W.got.length;
  S.ws._socket.pause(); // stops reading: the kernel buffers fill, then omsd's queue (256)
  await caughtUp(W, await produce(15000, 'max'), 90000);
  await sleep(500);
  const closed = new Promise((r) => (S.closed ? r() : S.ws.once('close', r)));
  S.ws._socket.resume();
  await Promise.race([closed, sleep(30000).then(() => assert.fail('not closed for its overflow within 30 s'))]);
  assert.equal(S.closed.code, 1013, 'closed with 1013');
  assert.ok(S.got.length < W.got.length - startW, 'it lost events when closed');
  await S.open(PORTS.A, { reconnect: true }); // compressed this time
  const r = await S.resume();
  assert.equal(r.resumed.data.recovered, true);
  await sleep(300);
  assertSameEvents(S.got, W.got.slice(startW), 'slow client after resume');
  assertOrdered(S.got, 'slow client after resume');
  await S.close();
});

test('broadcast through instance A reaches clients on B and C', async () => {
  const b = new RClient('on B', tok('customer', 31), []);
  const c = new RClient('on C', tok('customer', 32), []);
  await b.open(PORTS.B);
  await c.open(PORTS.C);
  const r = await fetch(`http://127.0.0.1:${PORTS.A}/websocket/broadcast`, {
    method: 'POST', headers: { Authorization: 'Bearer ' + tok('admin', 1), 'Content-Type': 'application/json' },
    body: JSON.stringify({ title: 'cluster', message: 'to every instance' }),
  });
  assert.equal(r.status, 202);
  for (const x of [b, c]) {
    const f = await x.next((f) => f.event === 'system_notification' && f.data.data.title === 'cluster');
    assert.equal(f.data.data.message, 'to every instance');
  }
  await b.close();
  await c.close();
});

test('presence is cluster-wide; a killed instance\'s users expire', async () => {
  const a = new RClient('501', tok('customer', 501), []);
  const b = new RClient('502', tok('customer', 502), []);
  const c1 = new RClient('503', tok('customer', 503), []);
  const c2 = new RClient('503 again', tok('customer', 503), []);
  await a.open(PORTS.A);
  await b.open(PORTS.B);
  await c1.open(PORTS.C);
  await c2.open(PORTS.C);
  const users = async (port) => {
    const r = await get(port, '/websocket/users/online');
    assert.equal(r.status, 200);
    return new Map(r.json.users.map((u) => [u.userId, u.connections]));
  };
  let seen;
  for (let i = 0; i < 50; i++) {
    seen = await users(PORTS.A);
    if (seen.get(501) === 1 && seen.get(502) === 1 && seen.get(503) === 2) break;
    await sleep(200);
  }
  assert.equal(seen.get(501), 1, 'A lists its own user');
  assert.equal(seen.get(502), 1, 'A lists B\'s user');
  assert.equal(seen.get(503), 2, 'A lists C\'s user with both connections');
  let onB;
  for (let i = 0; i < 50; i++) {
    onB = await users(PORTS.B);
    if (onB.get(501) === 1 && onB.get(503) === 2) break;
    await sleep(200);
  }
  assert.equal(onB.get(501), 1, 'B lists A\'s user');
  assert.equal(onB.get(503), 2, 'B lists C\'s users');
  const one = await get(PORTS.B, '/websocket/users/503/online'); // B has seen C by now
  assert.deepEqual(one.json, { userId: 503, online: true, connections: 2 });
  assert.equal(await metric(PORTS.A, 'oms_presence_instances'), 3);
  // a user leaving is seen everywhere within a couple of seconds
  await b.close();
  for (let i = 0; i < 30 && (await users(PORTS.A)).has(502); i++) await sleep(200);
  assert.equal((await users(PORTS.A)).has(502), false, 'a disconnect is seen on A');
  // C dies without a word: its users are gone within presence.expiry_s (4 s)
  process.kill(Number(env.PID_C), 'SIGKILL');
  const killedAt = Date.now();
  await sleep(500);
  assert.equal((await users(PORTS.A)).get(503), 2, 'still listed right after the kill');
  let gone = false;
  while (!gone && Date.now() - killedAt < 8000) {
    await sleep(250);
    gone = !(await users(PORTS.A)).has(503);
  }
  assert.ok(gone, 'C\'s users expired');
  const took = Date.now() - killedAt;
  assert.ok(took >= 3000 && took <= 7000, `expired after ${took} ms (expiry 4 s)`);
  assert.equal((await users(PORTS.A)).get(501), 1, 'A\'s own users stay');
  await a.close();
});

test('after instance A is SIGKILLed, its clients resume on B without loss', async () => {
  const S = new RClient('staff', tok('staff', 9005), ['orders', 'inventory']);
  const K = new RClient('customer', tok('customer', CUSTOMER), ['orders']);
  await S.open(PORTS.A);
  await K.open(PORTS.A);
  const startW = W.got.length, startKW = KW.got.length;
  await caughtUp(W, await produce(50, 'max'));
  process.kill(Number(env.PID_A), 'SIGKILL');
  await Promise.all([S, K].map((x) => new Promise((r) => (x.closed ? r() : x.ws.once('close', r)))));
  await caughtUp(W, await produce(1000, 'max'));
  await S.open(PORTS.B, { reconnect: true });
  await K.open(PORTS.B, { reconnect: true });
  const rs = await S.resume();
  const rk = await K.resume();
  assert.equal(rs.resumed.data.recovered, true);
  assert.equal(rk.resumed.data.recovered, true);
  await caughtUp(W, await produce(20, 'max'));
  await sleep(300);
  assertSameEvents(S.got, W.got.slice(startW), 'staff across the crash');
  assertOrdered(S.got, 'staff across the crash');
  assertSameEvents(K.got, KW.got.slice(startKW), 'customer across the crash');
  await S.close();
  await K.close();
});

test('positions that cannot be filled: recovered false and nothing partial', async () => {
  const S = new RClient('staff', tok('staff', 9006), ['orders', 'inventory']);
  await S.open(PORTS.B);
  const ord0 = `${env.TOPIC_ORDERS}:0`;
  const end0 = W.pos.get(ord0);
  assert.ok(end0 > 10n, 'partition 0 has events');
  // another cluster's (or a future) offset, a deleted topic, a partition that does not exist
  for (const since of [[`${ord0}:${end0 + 1000n}`], ['oms-t-deleted-long-ago.orders:0:5'], [`${env.TOPIC_ORDERS}:99:1`]]) {
    const r = await S.resume(since);
    assert.equal(r.resumed.event, 'resumed', JSON.stringify(since));
    assert.equal(r.resumed.data.recovered, false, JSON.stringify(since));
    assert.equal(r.replayed.length, 0, 'nothing partial');
  }
  // malformed positions are a bad request, the connection stays
  for (const bad of [['nonsense'], [`${ord0}:x`], [42], 'oms.orders:0:1', [`${ord0}:-7`]]) {
    S.send('resume', { since: bad });
    const f = await S.next((x) => x.event === 'error' && x.data.message.includes('since'), 5000);
    assert.equal(f.data.code, 'bad_request');
    S.frames.splice(S.frames.indexOf(f), 1);
  }
  // past retention: the start of partition 0 is deleted, as retention would
  const cut = end0 - 5n;
  const spec = path.join(env.T, 'delete-records.json');
  fs.writeFileSync(spec, JSON.stringify({ version: 1, partitions: [{ topic: env.TOPIC_ORDERS, partition: 0, offset: Number(cut) }] }));
  execFileSync('java', ['-cp', `${env.KAFKA_LIBS}/*`, 'org.apache.kafka.tools.DeleteRecordsCommand',
    '--bootstrap-server', env.KAFKA_BROKERS, '--offset-json-file', spec], { stdio: 'ignore', timeout: 60000 });
  const sinceAll = W.since().map((s) => (s.startsWith(ord0 + ':') ? `${ord0}:${cut - 20n}` : s));
  const r = await S.resume(sinceAll);
  assert.equal(r.resumed.data.recovered, false, 'a gap past retention is not recoverable');
  assert.equal(r.replayed.length, 0, 'nothing partial');
  // what is still in the log can be resumed from
  const ok = await S.resume(W.since().map((s) => (s.startsWith(ord0 + ':') ? `${ord0}:${cut}` : s)));
  assert.equal(ok.resumed.data.recovered, true);
  assert.equal(ok.replayed.filter((e) => e.id.startsWith(ord0 + ':')).length, W.got.filter((e) => e.id.startsWith(ord0 + ':') && parsePos(e.id).offset > cut).length);
  await S.close();
});
