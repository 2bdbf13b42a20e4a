// collect.js — a WebSocket client for the shell tests: connects to omsd with
// TOKEN, subscribes to orders and inventory, and appends every event frame
// to OUT as one JSON line until killed (or SECONDS pass).
//   OMS_PORT=... TOKEN=... OUT=file [SECONDS=n] node collect.js
'use strict';
const fs = require('node:fs');
const WebSocket = require('ws');

const env = process.env;
const out = fs.openSync(env.OUT, 'a');
const ws = new WebSocket(`ws://127.0.0.1:${env.OMS_PORT}/events`, {
  headers: { Authorization: `Bearer ${env.TOKEN}` },
});
ws.on('open', () => {
  ws.send(JSON.stringify({ event: 'subscribe_to_orders' }));
  ws.send(JSON.stringify({ event: 'subscribe_to_inventory' }));
});
ws.on('message', (m) => {
  const f = JSON.parse(m.toString());
  if (f.event === 'subscription_confirmed' && f.data.type === 'inventory') {
    fs.writeSync(out, JSON.stringify({ ready: true }) + '\n');
  }
  if (f.data && f.data.id) fs.writeSync(out, JSON.stringify(f) + '\n');
});
ws.on('close', (code) => process.exit(code === 1000 ? 0 : 1));
ws.on('error', (e) => {
  console.error(`collect: ${e.message}`);
  process.exit(1);
});
if (env.SECONDS) setTimeout(() => process.exit(0), Number(env.SECONDS) * 1000);
process.on('SIGTERM', () => process.exit(0));
