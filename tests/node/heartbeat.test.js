// omsd with short heartbeat settings (ping 1 s, idle 3 s) behind TLS:
// wss works, the server pings, and a silent peer is dropped.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const tls = require('node:tls');
const WebSocket = require('ws');
const { tok } = require('./lib');

const PORT = Number(process.env.OMS_PORT);
const url = `wss://127.0.0.1:${PORT}/events`;

test('wss: TLS connection with a header token', async () => {
  const ws = new WebSocket(url, { headers: { Authorization: 'Bearer ' + tok('admin', 1) }, rejectUnauthorized: false });
  const first = await new Promise((resolve, reject) => {
    ws.once('message', (m) => resolve(JSON.parse(m.toString())));
    ws.once('error', reject);
  });
  assert.equal(first.event, 'connected');
  ws.close();
});

test('REST over https', async () => {
  const body = await new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: PORT, rejectUnauthorized: false }, () => {
      s.write('GET /websocket/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    });
    let data = '';
    s.on('data', (d) => (data += d));
    s.on('end', () => resolve(data));
    s.on('error', reject);
  });
  assert.match(body, /^HTTP\/1\.1 200/);
  assert.match(body, /"status":"ok"/);
});

test('the server pings an idle client, which stays connected', async () => {
  const ws = new WebSocket(url, { headers: { Authorization: 'Bearer ' + tok('customer', 7) }, rejectUnauthorized: false });
  let pings = 0;
  ws.on('ping', () => pings++);
  await new Promise((r) => ws.once('open', r));
  await new Promise((r) => setTimeout(r, 4500));
  assert.ok(pings >= 2, `got ${pings} pings`);
  assert.equal(ws.readyState, WebSocket.OPEN);
  ws.close();
});

test('a peer that never answers pings is dropped after the idle timeout', async () => {
  // a raw TLS socket: upgrade, then silence (no pong, no reads)
  const started = Date.now();
  const closedAfter = await new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: PORT, rejectUnauthorized: false }, () => {
      s.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
        `Authorization: Bearer ${tok('customer', 8)}\r\n\r\n`);
    });
    let head = '';
    s.on('data', (d) => { head += d.toString('latin1'); });
    s.on('close', () => resolve({ ms: Date.now() - started, head }));
    s.on('error', () => {});
    setTimeout(() => reject(new Error('not dropped within 10 s')), 10000);
  });
  assert.match(closedAfter.head, /^HTTP\/1\.1 101/);
  assert.ok(closedAfter.ms >= 2500 && closedAfter.ms < 9000, `dropped after ${closedAfter.ms} ms`);
});
