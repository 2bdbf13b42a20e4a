// The web console (DESIGN §3.7) in a real browser: Debian's Chromium, headless,
// driven by playwright-core. This file starts omsd itself (OMSD_BIN with
// OMSD_CONFIG, in --dev mode for the sample tokens) so that it can stop and
// restart it under a connected page.
//   env: OMS_PORT, JWT_SECRET, OMSD_BIN, OMSD_CONFIG, OUT (folder for logs
//   and screenshots), CHROMIUM (default /usr/bin/chromium)
'use strict';
const test = require('node:test');
const { before, after } = test;
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { chromium } = require('playwright-core');
const { env, PORT, BASE, tok, connect, rest, sleep, producer } = require('./lib');

const OUT = env.OUT;
const CHROMIUM = env.CHROMIUM || '/usr/bin/chromium';
const staff = tok('staff', 200);
const uniq = () => Math.random().toString(36).slice(2, 10);
const CUSTOMER = 3; // the customer of GET /dev/tokens

// ---- omsd, started and stopped from here ---------------------------------------

let omsd = null;
let starts = 0;

async function startOmsd() {
  starts++;
  const log = fs.openSync(path.join(OUT, `omsd-${starts}.log`), 'w');
  const child = spawn(env.OMSD_BIN, ['--dev', '--config', env.OMSD_CONFIG], {
    stdio: ['ignore', log, log],
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:fast_unwind_on_malloc=0' },
  });
  fs.closeSync(log);
  fs.appendFileSync(path.join(OUT, 'omsd.pids'), `${child.pid}\n`);
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  omsd = child;
  for (let i = 0; i < 150; i++) {
    if (child.exitCode !== null) throw new Error(`omsd exited at start (see omsd-${starts}.log)`);
    try {
      const r = await fetch(`${BASE}/websocket/health`);
      if (r.ok) return child;
    } catch { /* not up yet */ }
    await sleep(100);
  }
  throw new Error('omsd did not answer health within 15 s');
}

async function stopOmsd() {
  const child = omsd;
  omsd = null;
  if (!child || child.exitCode !== null) return child ? { code: child.exitCode } : null;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10000);
  const r = await child.exited;
  clearTimeout(t);
  return r;
}

// ---- the browser ----------------------------------------------------------------

let browser = null;
const foreign = []; // requests to anything but omsd on 127.0.0.1
const pageErrors = [];
const consoleErrors = [];

function watch(page, name) {
  const ours = (u) => {
    try {
      const x = new URL(u);
      return x.hostname === '127.0.0.1' && x.port === String(PORT) && ['http:', 'ws:'].includes(x.protocol);
    } catch {
      return false;
    }
  };
  page.on('request', (r) => { if (!ours(r.url())) foreign.push(`${name}: ${r.url()}`); });
  page.on('websocket', (ws) => { if (!ours(ws.url())) foreign.push(`${name}: ${ws.url()}`); });
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  page.on('console', (m) => {
    // a refused upgrade or a stopped omsd is logged by the browser itself
    if (m.type() === 'error' && !/WebSocket connection|Failed to load resource|ERR_CONNECTION_REFUSED/.test(m.text())) {
      consoleErrors.push(`${name}: ${m.text()}`);
    }
  });
}

async function newPage(name, viewport = { width: 1280, height: 860 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  watch(page, name);
  page.sockets = 0;
  page.sent = [];
  page.on('websocket', (ws) => {
    page.sockets++;
    ws.on('framesent', (f) => {
      try { page.sent.push(JSON.parse(f.payload)); } catch { /* not JSON */ }
    });
  });
  await page.goto(`${BASE}/`);
  return page;
}

async function connectAs(page, role) {
  await page.click(`#sample-buttons button[data-role=${role}]`);
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.waitForSelector('#status[data-state=connected]');
}

const text = (page, sel) => page.locator(sel).innerText();
const shot = (page, name) => page.screenshot({ path: path.join(OUT, name) });

async function orderFor(userId, alias = 'ORD-' + uniq()) {
  const r = await rest('POST', '/websocket/notifications/order-created', {
    token: staff,
    body: { orderId: 'o-' + uniq(), aliasId: alias, userId, totalAmount: 99.99, status: 'created' },
  });
  assert.equal(r.status, 202, r.text);
  return alias;
}

let customer = null; // the customer page, connected with order updates on
let admin = null;

before(async () => {
  await startOmsd();
  // launch() gives the browser a fresh, empty user-data-dir of its own
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(async () => {
  if (browser) await browser.close();
  await stopOmsd();
});

// ---- static files ---------------------------------------------------------------

// A raw request: the path goes out exactly as written (fetch would normalise it).
function raw(method, p) {
  return new Promise((resolve, reject) => {
    const s = net.connect(PORT, '127.0.0.1');
    let buf = '';
    s.setTimeout(5000, () => { s.destroy(); reject(new Error(`no answer to ${method} ${p}`)); });
    s.on('connect', () => s.write(`${method} ${p} HTTP/1.1\r\nHost: 127.0.0.1:${PORT}\r\nConnection: close\r\n\r\n`));
    s.on('data', (d) => (buf += d.toString('latin1')));
    s.on('end', () => {
      const status = Number((buf.match(/^HTTP\/1\.1 (\d{3})/) || [])[1]);
      resolve({ status, text: buf });
    });
    s.on('error', reject);
  });
}

test('omsd serves the console with content types and cache headers', async () => {
  const want = {
    '/': ['text/html; charset=utf-8', 'no-cache'],
    '/index.html': ['text/html; charset=utf-8', 'no-cache'],
    '/app.js': ['text/javascript; charset=utf-8', 'public, max-age=300'],
    '/chart.js': ['text/javascript; charset=utf-8', 'public, max-age=300'],
    '/style.css': ['text/css; charset=utf-8', 'public, max-age=300'],
    '/favicon.svg': ['image/svg+xml', 'public, max-age=300'],
  };
  for (const [p, [type, cache]] of Object.entries(want)) {
    const r = await fetch(BASE + p);
    assert.equal(r.status, 200, p);
    assert.equal(r.headers.get('content-type'), type, p);
    assert.equal(r.headers.get('cache-control'), cache, p);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', p);
    const body = await r.text();
    if (p === '/') assert.match(body, /<title>OMS console<\/title>/);
  }
  const head = await fetch(`${BASE}/app.js`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  const post = await rest('POST', '/index.html', { body: {} });
  assert.equal(post.status, 405);
  const missing = await rest('GET', '/nothing-here.js');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error.code, 'not_found');
  // the page asks for nothing that is not served: every src/href is local and exists
  const html = await (await fetch(`${BASE}/`)).text();
  for (const m of html.matchAll(/(?:src|href)="([^"]+)"/g)) {
    assert.doesNotMatch(m[1], /^(https?:)?\/\//, `external reference ${m[1]}`);
    const r = await fetch(`${BASE}/${m[1]}`);
    assert.equal(r.status, 200, m[1]);
  }
});

test('path traversal cannot leave server.web_root', async () => {
  // 0300-console.sh puts secret.txt next to the web root, a symlink to it
  // and a hidden file inside
  const attempts = [
    '/../secret.txt', '/web/../../secret.txt', '/%2e%2e/secret.txt', '/%2E%2E/secret.txt',
    '/..%2fsecret.txt', '/%2e%2e%2fsecret.txt', '/index.html/../../secret.txt', '/..\\secret.txt',
    '/./../secret.txt', '//etc/passwd', '/../../../../etc/passwd', '/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
    '/escape.txt', '/.hidden', '/%2ehidden', '/app.js%00.html',
  ];
  for (const p of attempts) {
    const r = await raw('GET', p);
    // refused, or (libwebsockets with %00) the connection closed unanswered
    assert.ok(r.status === 400 || r.status === 404 || r.text === '', `${p}: status ${r.status}`);
    assert.doesNotMatch(r.text, /SECRET|root:x:0:0/, p);
  }
});

// ---- a customer ---------------------------------------------------------------------

test('customer: sample token, connect, order updates: one toast and one row for their own order', async () => {
  customer = await newPage('customer');
  await page_expectSamples(customer);
  await connectAs(customer, 'customer');
  assert.match(await text(customer, '#status'), /Connected/);
  assert.match(await text(customer, '#status-who'), /customer · user 3/);
  assert.equal(await customer.locator('#ops').isVisible(), false, 'no operator panel for customers');
  assert.equal(await customer.getByRole('switch', { name: 'Inventory Alerts' }).isDisabled(), true);

  await customer.getByRole('switch', { name: 'Order Updates' }).check();
  await customer.waitForSelector('#sub-order-state:has-text("Subscription confirmed")');

  // a staff connection sees both orders: once it has, the page has had its chance
  const observer = await connect({ token: staff });
  observer.send('subscribe_to_orders');
  await observer.event('subscription_confirmed');
  const mine = await orderFor(CUSTOMER);
  const other = await orderFor(CUSTOMER + 1);
  await observer.event('order_update', 5000, (d) => d.data.aliasId === mine);
  await observer.event('order_update', 5000, (d) => d.data.aliasId === other);
  observer.close();
  await customer.waitForSelector(`#panel-order .event:has-text("${mine}")`);
  await sleep(500);

  assert.equal(await customer.locator('#panel-order .event').count(), 1);
  assert.equal(await customer.locator('.toast').count(), 1);
  assert.match(await text(customer, '.toast[data-kind=order]'), new RegExp(mine));
  assert.equal(await text(customer, '#count-order'), '1');
  assert.equal(await customer.locator(`text=${other}`).count(), 0);

  // the row expands to the event's JSON
  await customer.locator('#panel-order .event summary').first().click();
  const json = customer.locator('#panel-order .event .json');
  await json.waitFor();
  const shown = JSON.parse(await json.innerText());
  assert.equal(shown.event, 'order_update');
  assert.equal(shown.data.data.aliasId, mine);
  assert.equal(shown.data.userId, CUSTOMER);
  assert.match(shown.data.id, /:\d+:\d+$/);

  // ping shows the round trip
  await customer.getByRole('button', { name: 'Ping' }).click();
  await customer.waitForSelector('#rtt:has-text("round trip")');
  assert.match(await text(customer, '#rtt'), /round trip [\d.]+ ms/);
  await shot(customer, 'console-customer.png');
});

async function page_expectSamples(page) {
  await page.waitForSelector('#samples:not([hidden])');
  const roles = await page.locator('#sample-buttons button').evaluateAll((bs) => bs.map((b) => b.dataset.role));
  assert.deepEqual(roles.sort(), ['admin', 'customer', 'staff']);
}

// ---- an admin -------------------------------------------------------------------

test('admin: inventory alert in its tab, operator stats with a chart', async () => {
  admin = await newPage('admin');
  await connectAs(admin, 'admin');
  await admin.getByRole('switch', { name: 'Inventory Alerts' }).check();
  await admin.waitForSelector('#sub-inventory-state:has-text("Subscription confirmed")');
  const product = 'Widget ' + uniq();
  const r = await rest('POST', '/websocket/notifications/inventory-alert', {
    token: staff,
    body: { productId: 4242, productName: product, currentQuantity: 3, threshold: 10, alertType: 'low_stock' },
  });
  assert.equal(r.status, 202, r.text);
  await admin.waitForSelector(`.toast[data-kind=inventory]:has-text("${product}")`);
  await admin.getByRole('tab', { name: /Inventory/ }).click();
  const row = admin.locator(`#panel-inventory .event:has-text("${product}")`);
  await row.waitFor();
  assert.match(await row.innerText(), /low stock/);
  assert.equal(await admin.locator('#panel-order').isVisible(), false);

  // operator panel: live numbers from /websocket/stats (customer + admin)
  await admin.waitForSelector('#ops:not([hidden])');
  await admin.waitForFunction(() => Number(document.getElementById('kpi-connections').textContent) >= 2);
  assert.match(await text(admin, '#kpi-events'), /^\d+\.\d$/);
  assert.match(await text(admin, '#kpi-deliveries'), /^\d+\.\d$/);
  const drawn = await admin.locator('#chart').evaluate((c) => c.width > 0 && c.height > 0);
  assert.ok(drawn, 'the chart has a size');
  assert.equal(await admin.locator('#broadcast').isVisible(), true);
  await shot(admin, 'console-admin.png');
});

test('admin broadcast form reaches the customer page', async () => {
  const title = 'Maintenance ' + uniq();
  await admin.fill('#bc-title', title);
  await admin.fill('#bc-message', 'Scheduled maintenance will begin at 2 AM UTC');
  await admin.selectOption('#bc-severity', 'warning');
  await admin.fill('#bc-data', '{"estimatedDuration": "2 hours"}');
  await admin.getByRole('button', { name: 'Send broadcast' }).click();
  await admin.waitForSelector('#bc-result:has-text("Broadcast sent")');
  await customer.waitForSelector(`.toast[data-kind=system]:has-text("${title}")`);
  await customer.getByRole('tab', { name: /System/ }).click();
  const row = customer.locator(`#panel-system .event:has-text("${title}")`);
  await row.waitFor();
  assert.match(await row.innerText(), /warning/);
  assert.equal(await text(customer, '#count-system'), '1');
  await row.locator('summary').click();
  const shown = JSON.parse(await row.locator('.json').innerText());
  assert.deepEqual(shown.data.data.data, { estimatedDuration: '2 hours' });
  // bad JSON in the data field is caught before sending
  await admin.fill('#bc-title', 'x');
  await admin.fill('#bc-message', 'y');
  await admin.fill('#bc-data', '{nope');
  await admin.getByRole('button', { name: 'Send broadcast' }).click();
  await admin.waitForSelector('#bc-result:has-text("not valid JSON")');
  await customer.getByRole('tab', { name: /Orders/ }).click();
});

test('staff see the operator panel but not the broadcast form', async () => {
  const page = await newPage('staff');
  await connectAs(page, 'staff');
  await page.waitForSelector('#ops:not([hidden])');
  assert.equal(await page.locator('#broadcast').isVisible(), false);
  await page.context().close();
});

test('staff: a filter box per subscription (normalized echo, only matching events, bad_filter), and Chromium negotiates permessage-deflate', async () => {
  const page = await newPage('staff-filter');
  await connectAs(page, 'staff');
  const x = 600000 + Math.floor(Math.random() * 100000), y = x + 1;
  await page.fill('#sub-inventory-filter', `{"productId": [${x}, ${x}], "quantity": {"lt": 10, "lte": 10}}`);
  await page.getByRole('switch', { name: 'Inventory Alerts' }).check();
  await page.waitForSelector('#sub-inventory-state:has-text("Subscription confirmed (filtered)")');
  assert.equal(await page.inputValue('#sub-inventory-filter'), `{"productId":${x},"quantity":{"lt":10}}`);
  const sent = page.sent.filter((f) => f.event === 'subscribe_to_inventory').pop();
  assert.deepEqual(sent.data.filter.productId, [x, x]);
  const nameX = 'Filtered ' + uniq(), nameY = 'Other ' + uniq();
  for (const [productId, productName] of [[y, nameY], [x, nameX]]) {
    const r = await rest('POST', '/websocket/notifications/inventory-alert', {
      token: staff, body: { productId, productName, currentQuantity: 3, threshold: 10, alertType: 'low_stock' },
    });
    assert.equal(r.status, 202, r.text);
  }
  await page.getByRole('tab', { name: /Inventory/ }).click();
  await page.locator(`#panel-inventory .event:has-text("${nameX}")`).waitFor();
  await sleep(500);
  assert.equal(await page.locator(`#panel-inventory .event:has-text("${nameY}")`).count(), 0);
  // a bad filter: the server's bad_filter message, the subscription stays on
  await page.fill('#sub-inventory-filter', '{"qty": 1}');
  await page.press('#sub-inventory-filter', 'Enter');
  await page.waitForSelector('#sub-inventory-state:has-text("bad filter: qty: not a field of inventory events")');
  assert.equal(await page.getByRole('switch', { name: 'Inventory Alerts' }).isChecked(), true);
  // not JSON: said on the page, nothing sent
  const before = page.sent.length;
  await page.fill('#sub-inventory-filter', '{productId: 1');
  await page.press('#sub-inventory-filter', 'Enter');
  await page.waitForSelector('#sub-inventory-state:has-text("the filter is not JSON")');
  assert.equal(page.sent.length, before);
  // an empty box: everything again
  await page.fill('#sub-inventory-filter', '');
  await page.press('#sub-inventory-filter', 'Enter');
  await page.waitForSelector('#sub-inventory-state:has-text("Subscription confirmed")');
  assert.equal(await text(page, '#sub-inventory-state'), 'Subscription confirmed');
  // the browser offers permessage-deflate and omsd accepts it
  const ext = await page.evaluate((t) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/events?token=${encodeURIComponent(t)}`);
    ws.onopen = () => { resolve(ws.extensions); ws.close(); };
    ws.onerror = () => reject(new Error('websocket error'));
  }), staff);
  assert.equal(ext, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover');
  await shot(page, 'console-filter.png');
  await page.context().close();
});

// ---- refused tokens ------------------------------------------------------------------

test('a bad token shows the server\'s 401 message', async () => {
  const page = await newPage('bad-token');
  await page.fill('#token', 'abc.def.ghi');
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.waitForSelector('#status[data-state=error]');
  const detail = await text(page, '#conn-detail');
  assert.match(detail, /authentication failed \(401\): malformed token/);
  assert.match(await text(page, '#status'), /Authentication failed/);
  await shot(page, 'console-401.png');
  const sockets = page.sockets;
  await sleep(1500);
  assert.equal(page.sockets, sockets, 'no reconnect loop with a refused token');

  await page.fill('#token', tok('customer', 9, { ttl: -60 }));
  assert.match(await text(page, '#token-info'), /expired/);
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.waitForSelector('#conn-detail:has-text("token expired (401)")');
  await page.context().close();
});

test('a token that expires while connected (4401) says so and does not reconnect', async (t) => {
  const page = await newPage('expiring');
  await page.fill('#token', tok('customer', 7, { ttl: 3 }));
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.waitForSelector('#status[data-state=connected]');
  await page.waitForSelector('#status[data-state=error]', { timeout: 15000 });
  assert.match(await text(page, '#status'), /Token expired/);
  assert.match(await text(page, '#conn-detail'), /4401/);
  // the close code the browser saw (omsd means 4401)
  const seen = (await text(page, '#activity')).match(/token expired: closed by the server, code (\d+)/);
  assert.equal(seen && seen[1], '4401', 'the browser sees omsd\'s close code');
  const sockets = page.sockets;
  await sleep(1500);
  assert.equal(page.sockets, sockets, 'no reconnect with an expired token');
  await page.context().close();
});

// ---- omsd restarts -------------------------------------------------------------------

test('omsd stops and starts again: the page reconnects by itself, re-subscribes and resumes', async () => {
  const before = customer.sockets;
  const stopped = await stopOmsd();
  assert.equal(stopped.code, 0, `omsd exit ${JSON.stringify(stopped)}`);
  await customer.waitForSelector('#status[data-state=connecting]');
  await customer.waitForSelector('#conn-detail:has-text("retrying in")');
  await sleep(1500); // a few failed attempts while omsd is down
  await shot(customer, 'console-reconnecting.png');
  await startOmsd();
  await customer.waitForSelector('#status[data-state=connected]', { timeout: 20000 });
  assert.ok(customer.sockets > before + 1, `reconnect attempts: ${customer.sockets - before}`);
  await customer.waitForSelector('#sub-order-state:has-text("Subscription confirmed")');
  await customer.waitForSelector('#activity:has-text("resumed:")');

  // what the page sent on the new connection: subscribe, then resume with
  // the highest position per partition it has seen
  const sent = customer.sent.map((f) => f.event);
  const sub = sent.lastIndexOf('subscribe_to_orders');
  const res = sent.lastIndexOf('resume');
  assert.ok(sub >= 0 && res > sub, `sent: ${sent.join(', ')}`);
  const since = customer.sent[res].data.since;
  assert.ok(Array.isArray(since) && since.length > 0);
  for (const p of since) assert.match(p, /^[A-Za-z0-9._-]+:\d+:-?\d+$/);
  const topics = new Set(since.map((p) => p.replace(/:\d+:-?\d+$/, '')));
  assert.ok(topics.has(env.TOPIC_ORDERS) && topics.has(env.TOPIC_NOTIFICATIONS), [...topics].join(', '));
  const seenOrder = JSON.parse(await customer.locator('#panel-order .event .json').first().innerText()).data.id;
  const [, part, off] = seenOrder.match(/:(\d+):(\d+)$/);
  const resumedAt = since.find((p) => p.startsWith(`${env.TOPIC_ORDERS}:${part}:`));
  assert.ok(BigInt(resumedAt.split(':').pop()) >= BigInt(off), `${resumedAt} covers ${seenOrder}`);

  // events flow again
  const alias = await orderFor(CUSTOMER);
  await customer.waitForSelector(`#panel-order .event:has-text("${alias}")`);
  await shot(customer, 'console-reconnected.png');
});

// ---- a narrow screen -------------------------------------------------------------------

test('usable on a narrow screen (390×844): no horizontal scrolling', async () => {
  const page = await newPage('narrow', { width: 390, height: 844 });
  await connectAs(page, 'admin');
  await page.getByRole('switch', { name: 'Order Updates' }).check();
  await page.waitForSelector('#sub-order-state:has-text("Subscription confirmed")');
  await orderFor(CUSTOMER);
  await page.waitForSelector('#panel-order .event');
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(wide <= 390, `page is ${wide}px wide`);
  for (const sel of ['#connect', '#ping', '[role=tab] >> nth=3', '#bc-send']) {
    const box = await page.locator(sel).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${sel} within the screen: ${JSON.stringify(box)}`);
  }
  await page.screenshot({ path: path.join(OUT, 'console-narrow.png'), fullPage: true });
  await page.context().close();
});

// ---- Server-Sent Events ----------------------------------------------------------------

test('Server-Sent Events: omsd killed mid-stream, another started; EventSource resumes with Last-Event-ID, nothing missed', async () => {
  const page = await newPage('sse');
  await page.selectOption('#transport', 'sse');
  await page.getByRole('switch', { name: 'Order Updates' }).check();
  await connectAs(page, 'staff');
  await page.waitForSelector('#sub-order-state:has-text("Subscription confirmed")'); // the stream's own subscription_confirmed
  assert.equal(await page.locator('#ping').isDisabled(), true, 'no ping on a one-way stream');
  const first = await orderFor(CUSTOMER);
  await page.waitForSelector(`#panel-order .event:has-text("${first}")`);
  // SIGKILL mid-stream; orders go on into Kafka while no omsd runs
  const dead = omsd;
  omsd = null;
  dead.kill('SIGKILL');
  await dead.exited;
  await page.waitForSelector('#status[data-state=connecting]');
  const missed = [];
  for (let i = 0; i < 5; i++) {
    const alias = 'SSE-' + uniq();
    missed.push(alias);
    producer(['emit', 'OrderCreated', '--json', JSON.stringify({
      orderId: 'o-' + uniq(), aliasId: alias, userId: CUSTOMER, totalAmount: 5, status: 'created', items: [],
    })]);
  }
  await startOmsd(); // a new process: it knows nothing of the page; the id says it all
  await page.waitForSelector('#status[data-state=connected]', { timeout: 20000 });
  await page.waitForSelector('#activity:has-text("missed event")', { timeout: 20000 });
  for (const alias of missed) await page.waitForSelector(`#panel-order .event:has-text("${alias}")`);
  const after = await orderFor(CUSTOMER);
  await page.waitForSelector(`#panel-order .event:has-text("${after}")`);
  // each once, in the order they were produced (one key per order: any
  // partition; the page lists the newest first)
  const rows = await page.locator('#panel-order .event').allInnerTexts();
  for (const alias of [first, ...missed, after]) assert.equal(rows.filter((r) => r.includes(alias)).length, 1, alias);
  await shot(page, 'console-sse.png');
  await page.context().close();
});

test('the pages made no request to any other host, and threw no error', () => {
  assert.deepEqual(foreign, []);
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors, []);
});
