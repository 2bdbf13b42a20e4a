'use strict';
// ws-load.js — BENCH=compression's clients: N connections of Node's `ws`
// to omsd's /events (admin tokens minted with $JWT_SECRET), offering
// permessage-deflate or not (argv: URL N on|off READY_FILE), subscribed to
// orders and inventory; counts what arrives; writes READY_FILE once all
// are subscribed; on SIGINT prints {"messages", "bytesRead"} and exits.
// (Node's ws because oms-load's libwebsockets client looped once it
// negotiated permessage-deflate; `oms-load --compress` works since pmd.c
// passes uncompressed frames as lws 4.1.6's client parser takes them, and
// BENCH=peers uses it.)
const crypto = require('node:crypto');
const fs = require('node:fs');
const WebSocket = require('../node/node_modules/ws');

const [url, nArg, mode, ready] = process.argv.slice(2);
const n = Number(nArg);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const head = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64({ sub: '1', userId: 1, role: 'admin', iat: now, exp: now + 7200 });
const token = head + '.' + crypto.createHmac('sha256', process.env.JWT_SECRET).update(head).digest('base64url');
const socks = [];
let subscribed = 0, messages = 0, next = 0, failed = 0;

function one() {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers: { Authorization: 'Bearer ' + token }, perMessageDeflate: mode === 'on' });
    let subs = 0;
    ws.on('message', (m) => {
      messages++;
      if (subs < 2 && m.toString().startsWith('{"event":"subscription_confirmed"')) {
        if (++subs === 2) { subscribed++; resolve(); }
      }
    });
    ws.on('open', () => {
      ws.send('{"event":"subscribe_to_orders"}');
      ws.send('{"event":"subscribe_to_inventory"}');
    });
    ws.on('error', () => { failed++; resolve(); });
    socks.push(ws);
  });
}
(async () => {
  await Promise.all(Array.from({ length: 200 }, async () => { while (next < n) { next++; await one(); } }));
  fs.writeFileSync(ready, JSON.stringify({ subscribed, failed }) + '\n');
})();
process.on('SIGINT', () => {
  const bytesRead = socks.reduce((s, ws) => s + (ws._socket ? ws._socket.bytesRead : 0), 0);
  const ext = socks.filter((ws) => ws.extensions === 'permessage-deflate').length;
  console.log(JSON.stringify({ messages, bytesRead, negotiated: ext, subscribed, failed }));
  process.exit(0);
});
