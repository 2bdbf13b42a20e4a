'use strict';
// The resume benchmark's client side (run by bench-resume.sh from tests/node,
// whose node_modules has `ws`).
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, spawn } = require('node:child_process');
const crypto = require('node:crypto');
const WebSocket = require('ws');

const env = process.env;
const EVENTS = Number(env.EVENTS);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
function tok(role, userId) {
  const now = Math.floor(Date.now() / 1000);
  const h = b64({ alg: 'HS256', typ: 'JWT' });
  const p = b64({ sub: String(userId), userId, role, iat: now, exp: now + 3600 });
  const s = crypto.createHmac('sha256', env.JWT_SECRET).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${s}`;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };

// a staff client subscribed to orders; keeps the highest position per partition
function client(port, userId, since) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/events`, { headers: { Authorization: 'Bearer ' + tok('staff', userId) }, maxPayload: 64 << 20 });
    const c = { ws, pos: new Map(since || []), events: 0, holding: !!since, onResumed: null };
    ws.on('message', (m) => {
      const f = JSON.parse(m.toString());
      if (f.data && f.data.id && f.data.type) {
        c.events++;
        if (c.holding) return; // positions named by the resume stay as they were
        const i = f.data.id.lastIndexOf(':');
        const k = f.data.id.slice(0, i), o = Number(f.data.id.slice(i + 1));
        if (!(c.pos.get(k) >= o)) c.pos.set(k, o);
      } else if (f.event === 'subscription_confirmed') {
        if (!c.holding) for (const p of f.data.positions) { const i = p.lastIndexOf(':'); c.pos.set(p.slice(0, i), Number(p.slice(i + 1))); }
        resolve(c);
      } else if (f.event === 'resumed' && c.onResumed) {
        c.holding = false;
        c.onResumed(f.data);
      }
    });
    ws.on('open', () => ws.send(JSON.stringify({ event: 'subscribe_to_orders' })));
    ws.on('error', reject);
  });
}
function resume(c) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    c.onResumed = (d) => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, data: d });
    c.ws.send(JSON.stringify({ event: 'resume', data: { since: [...c.pos].map(([k, v]) => `${k}:${v}`) } }));
  });
}
const close = (c) => new Promise((r) => { c.ws.once('close', r); c.ws.close(); });

// exactly n order events, through emit
function produceOrders(n, seed) {
  const lines = execFileSync(`${env.BIN}/oms-producer`, ['simulate', '--dry-run', '--print', '--rate', 'max', '--duration', '0', '--count', String(n * 8), '--seed', String(seed), '--users', '200'], { encoding: 'utf8', maxBuffer: 1 << 30 })
    .split('\n').filter((l) => l.includes('"type":"Order')).slice(0, n);
  if (lines.length < n) throw new Error('not enough order events generated');
  execFileSync(`${env.BIN}/oms-producer`, ['emit', '--file', '-'], { input: lines.join('\n') + '\n', stdio: ['pipe', 'ignore', 'inherit'], env: { ...env, OMS_CONFIG: env.OMS_CONFIG } });
}

async function metric(port, name) {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  let s = 0;
  for (const l of (await r.text()).split('\n')) if (l.startsWith(name + ' ') || l.startsWith(name + '{')) s += Number(l.split(' ').pop());
  return s;
}

async function part1() {
  const out = {};
  let seed = 1;
  for (const [name, port] of [['memory', Number(env.PORT_MEM)], ['kafka', Number(env.PORT_KAFKA)]]) {
    const times = [];
    for (let round = 0; round < 5; round++) {
      const c = await client(port, 7000 + round);
      const since = new Map(c.pos);
      await close(c);
      produceOrders(EVENTS, seed++);
      await sleep(500);
      const r = await client(port, 7000 + round, since);
      const res = await resume(r);
      if (!res.data.recovered || res.data.replayed !== EVENTS) throw new Error(`${name}: ${JSON.stringify(res.data)} (wanted ${EVENTS})`);
      times.push(res.ms);
      await close(r);
    }
    out[name] = times;
    console.log(`resume: ${EVENTS} missed events, from ${name}: median ${median(times).toFixed(0)} ms (${times.map((t) => t.toFixed(0)).join(', ')}) = ${(EVENTS / median(times) * 1000).toFixed(0)} events/s`);
  }
  return out;
}

async function part2() {
  const port = Number(env.PORT_MEM);
  const RATE = Number(env.BENCH_RESUME_RATE || 1000), CLIENTS = 200, RESUMERS = 100, WIN = 8;
  // the resuming clients: connected, positions noted, then away
  const away = [];
  for (let i = 0; i < RESUMERS; i++) away.push(await client(port, 8000 + i));
  const sinces = away.map((c) => new Map(c.pos));
  await Promise.all(away.map(close));
  produceOrders(1000, 99);
  // live load: 200 clients subscribed to all orders, the producer at RATE
  const load = spawn(env.LOAD, ['--url', `ws://127.0.0.1:${port}/events`, '--connections', String(CLIENTS), '--subscribe', 'orders', '--duration', String(WIN * 3 + 10), '--first-user-id', '100000'], { stdio: ['ignore', fs.openSync(path.join(env.OUT, 'load.out'), 'w'), 'inherit'] });
  await sleep(3000);
  const prod = spawn(`${env.BIN}/oms-producer`, ['simulate', '--rate', String(RATE), '--duration', String(WIN * 3 + 4), '--seed', '5'], { stdio: 'ignore', env: { ...env } });
  await sleep(2000);
  const live = async () => (await metric(port, 'oms_events_delivered_total')) - (await metric(port, 'oms_resume_replayed_total'));
  let a = await live(), t = Date.now();
  await sleep(WIN * 1000);
  let b = await live();
  const base = (b - a) / ((Date.now() - t) / 1000);
  // 100 clients come back at once and resume a 1,000-event gap each
  const back = await Promise.all(sinces.map((s, i) => client(port, 8000 + i, s)));
  a = await live(); t = Date.now();
  const t0 = Date.now();
  const results = await Promise.all(back.map(resume));
  const allDone = Date.now() - t0;
  if (env.DEBUG) console.log('debug since', [...sinces[0]].slice(0, 3), 'answer', results[0].data);
  await sleep(Math.max(0, WIN * 1000 - (Date.now() - t)));
  b = await live();
  const replayed = results.reduce((s, r) => s + r.data.replayed, 0);
  // the resumed clients' own live events are not the load clients'
  const theirLive = back.reduce((s, c) => s + c.events, 0) - replayed;
  const during = (b - a - theirLive) / ((Date.now() - t) / 1000);
  const bad = results.filter((r) => !r.data.recovered).length;
  console.log(`resume: live fan-out (200 clients, ${RATE} events/s): ${base.toFixed(0)} deliveries/s without resumes, ${during.toFixed(0)} to the same 200 while 100 clients resumed at once (${(100 * during / base).toFixed(1)}%)`);
  console.log(`resume: the 100 resumes: ${replayed} events replayed, all answered in ${allDone} ms, not recovered: ${bad}`);
  await Promise.all(back.map(close));
  prod.kill('SIGTERM');
  load.kill('SIGTERM');
  if (during < 0.8 * base) console.log('resume: FAILED: live fan-out fell more than 20% during the resumes');
  return { base, during, replayed, allDone };
}

(async () => {
  const r1 = env.SKIP1 ? null : await part1();
  const r2 = await part2();
  fs.writeFileSync(path.join(env.OUT, 'results.json'), JSON.stringify({ part1: r1, part2: r2 }, null, 1));
  process.exit(0);
})().catch((e) => { console.error('resume: FAILED:', e.message); process.exit(1); });
