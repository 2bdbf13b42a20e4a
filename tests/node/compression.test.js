'use strict';
// permessage-deflate, compressed once (issue #20), against omsd A
// (compression on, compression_min_bytes 256) and B (compression off), see
// 0730-compression.sh. A raw TCP client reads the frames as they are on
// the wire (RSV1, lengths) and inflates them itself; real `ws` and
// socket.io-client clients negotiate it and get the same events as
// clients that do not.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const zlib = require('node:zlib');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const { io } = require('socket.io-client');
const { env, tok, sleep, producerAsync, metric } = require('./lib');

const PORT_A = Number(env.PORT_A);
const PORT_B = Number(env.PORT_B);
const STAFF = tok('staff', 9101);
let seq = 0;

// A WebSocket client on a bare socket: sends the upgrade itself (offering
// `offer` as Sec-WebSocket-Extensions when given), keeps the response
// headers, and splits what arrives into frames {fin, rsv1, opcode, payload,
// wire} (wire: the frame's bytes on the socket), inflating compressed
// messages with one inflater per connection, as a browser does.
function raw(port, t, offer) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const key = crypto.randomBytes(16).toString('base64');
    const c = { sock, frames: [], msgs: [], headers: null, waiters: [], bytes: 0 };
    let buf = Buffer.alloc(0);
    const inflater = zlib.createInflateRaw();
    const pending = [];
    const done = (m) => {
      c.msgs.push(m);
      c.waiters = c.waiters.filter((w) => !(w.pred(m) && (w.resolve(m), true)));
    };
    // inflate in order: each compressed message is its payload + 00 00 ff ff
    let chain = Promise.resolve();
    const inflate = (payload) => new Promise((res, rej) => {
      const out = [];
      const onData = (d) => out.push(d);
      inflater.on('data', onData);
      inflater.write(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]));
      inflater.flush(zlib.constants.Z_SYNC_FLUSH, () => { inflater.off('data', onData); res(Buffer.concat(out)); });
      inflater.once('error', rej);
    });
    sock.on('data', (d) => {
      c.bytes += d.length;
      buf = Buffer.concat([buf, d]);
      if (!c.headers) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString().split('\r\n');
        c.status = Number(head[0].split(' ')[1]);
        c.headers = {};
        for (const l of head.slice(1)) { const i = l.indexOf(':'); c.headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim(); }
        buf = buf.subarray(end + 4);
        if (c.status !== 101) { reject(new Error(`upgrade refused: ${c.status}`)); return; }
      }
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1] & 0x7f, off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + len) return;
        const f = { fin: !!(buf[0] & 0x80), rsv1: !!(buf[0] & 0x40), opcode: buf[0] & 0xf, payload: buf.subarray(off, off + len), wire: off + len };
        buf = buf.subarray(off + len);
        c.frames.push(f);
        if (f.opcode === 1) {
          const p = f.payload;
          chain = chain.then(async () => {
            const text = (f.rsv1 ? await inflate(p) : p).toString();
            done({ ...JSON.parse(text), wire: f.wire, text, rsv1: f.rsv1 });
          });
        } else if (f.opcode === 9) {
          c.sendFrame(0xa, f.payload);
        }
      }
    });
    c.sendFrame = (opcode, payload, rsv1 = false, fin = true) => {
      const mask = crypto.randomBytes(4);
      const len = payload.length;
      const b0 = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
      const head = len < 126 ? Buffer.from([b0, 0x80 | len]) : Buffer.from([b0, 0x80 | 126, len >> 8, len & 0xff]);
      const body = Buffer.from(payload);
      for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
      sock.write(Buffer.concat([head, mask, body]));
    };
    c.send = (event, data) => c.sendFrame(1, Buffer.from(JSON.stringify({ event, data })));
    c.next = (pred, ms = 5000, what = 'message') => {
      const seen = c.msgs.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((res, rej) => {
        const tm = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms);
        c.waiters.push({ pred, resolve: (m) => { clearTimeout(tm); res(m); } });
      });
    };
    c.close = () => sock.destroy();
    sock.on('error', reject);
    sock.on('connect', () => {
      sock.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${t}\r\n` +
        (offer ? `Sec-WebSocket-Extensions: ${offer}\r\n` : '') + '\r\n');
    });
    c.next((m) => m.event === 'connected').then(() => resolve(c), reject);
  });
}

async function emit(events) {
  const file = `${env.T}/emit-${++seq}.jsonl`;
  fs.writeFileSync(file, events.map((e) => JSON.stringify(e)).join('\n') + '\n');
  await producerAsync(['emit', '--file', file]);
}
const uniq = () => Math.random().toString(36).slice(2, 10);
const orders = (p, n) => Array.from({ length: n }, (_, i) => ({
  type: 'OrderCreated', orderId: `${p}-${i}`, aliasId: `A-${p}-${i}`, userId: 1 + (i % 3), totalAmount: 10 + i, status: 'created',
  items: [{ productId: 1 + i, productName: 'Widget with a rather long product name', quantity: 2, price: 9.99 }],
}));

async function waitFor(pred, ms = 10000) {
  const until = Date.now() + ms;
  while (Date.now() < until) { if (pred()) return; await sleep(50); }
  assert.fail('timed out');
}

test('nothing is deflated while no connection negotiated it; then each event once for all', async () => {
  const plain = [await raw(PORT_A, STAFF), await raw(PORT_A, STAFF)];
  for (const c of plain) {
    c.send('subscribe_to_orders');
    await c.next((m) => m.event === 'subscription_confirmed');
  }
  const d0 = await metric('oms_ws_deflated_frames_total');
  const p = 'nz-' + uniq();
  await emit(orders(p, 5));
  const mine = (c, q) => c.msgs.filter((m) => m.event === 'order_update' && m.data.data.orderId.startsWith(q));
  await waitFor(() => plain.every((c) => mine(c, p).length === 5));
  assert.equal(await metric('oms_ws_deflated_frames_total'), d0, 'no deflate without a taker');
  const z = [await raw(PORT_A, STAFF, 'permessage-deflate'), await raw(PORT_A, STAFF, 'permessage-deflate')];
  for (const c of z) {
    c.send('subscribe_to_orders');
    await c.next((m) => m.event === 'subscription_confirmed');
  }
  const q = 'nz-' + uniq();
  await emit(orders(q, 5));
  await waitFor(() => [...plain, ...z].every((c) => mine(c, q).length === 5));
  for (const c of z) for (const m of mine(c, q)) assert.equal(m.rsv1, true);
  assert.equal(await metric('oms_ws_deflated_frames_total'), d0 + 5, 'five events, five deflates for two takers');
  for (const c of [...plain, ...z]) c.close();
  await sleep(200); // the closes reach omsd before the next test counts takers
});

test('raw client: negotiated in the handshake; events compressed (RSV1, fewer bytes), small frames not; same text as without', async () => {
  const z = await raw(PORT_A, STAFF, 'permessage-deflate; client_max_window_bits');
  const plain = await raw(PORT_A, STAFF);
  assert.match(z.headers['sec-websocket-extensions'] || '', /^permessage-deflate/);
  assert.equal(plain.headers['sec-websocket-extensions'], undefined);
  for (const c of [z, plain]) {
    c.send('subscribe_to_orders');
    await c.next((m) => m.event === 'subscription_confirmed');
  }
  const p = 'cz-' + uniq();
  await emit(orders(p, 20));
  const mine = (c) => c.msgs.filter((m) => m.event === 'order_update' && m.data.data.orderId.startsWith(p));
  await waitFor(() => mine(z).length === 20 && mine(plain).length === 20);
  // the same events, byte for byte once inflated
  assert.deepEqual(mine(z).map((m) => m.text), mine(plain).map((m) => m.text));
  for (const m of mine(z)) {
    assert.ok(m.text.length >= 256);
    assert.equal(m.rsv1, true, 'an event over compression_min_bytes is compressed');
    assert.ok(m.wire < m.text.length, `${m.wire} bytes on the wire for ${m.text.length} of JSON`);
  }
  for (const m of mine(plain)) assert.equal(m.rsv1, false);
  const zBytes = mine(z).reduce((n, m) => n + m.wire, 0), pBytes = mine(plain).reduce((n, m) => n + m.wire, 0);
  console.log(`# 20 order events: ${zBytes} bytes compressed, ${pBytes} plain (${(zBytes / pBytes * 100).toFixed(1)} %)`);
  assert.ok(zBytes < pBytes * 0.8, `${zBytes} vs ${pBytes}`);
  // small frames (under 256 bytes) go uncompressed, RSV1 clear
  z.send('ping');
  const pong = await z.next((m) => m.event === 'pong');
  assert.equal(pong.rsv1, false);
  assert.ok(pong.text.length < 256);
  // the server's ping is a control frame, never compressed
  z.close();
  plain.close();
});

test('client messages compressed by the client are inflated; RSV1 without the extension is a protocol error', async () => {
  const z = await raw(PORT_A, STAFF, 'permessage-deflate');
  // a compressed subscribe with a filter: the server inflates it
  const msg = Buffer.from(JSON.stringify({ event: 'subscribe_to_inventory', data: { filter: { productId: [1, 2, 3] } } }));
  const d = zlib.deflateRawSync(msg, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  z.sendFrame(1, d.subarray(0, d.length - 4), true);
  const conf = await z.next((m) => m.event === 'subscription_confirmed');
  assert.deepEqual(conf.data.filter, { productId: [1, 2, 3] });
  z.close();
  // RSV1 without the extension negotiated: a protocol error, the connection closes (no crash)
  const p = await raw(PORT_A, STAFF);
  const closed = new Promise((res) => p.sock.on('close', res));
  p.sendFrame(1, d.subarray(0, d.length - 4), true);
  await closed;
  const c1002 = p.frames.find((f) => f.opcode === 8);
  assert.ok(c1002, 'a close frame');
  assert.equal(c1002.payload.readUInt16BE(0), 1002);
});

// A deflate block with fixed codes, as a client may write it: the literals
// of prefix, then `matches` copies of 258 bytes at distance 1, and no end
// of block (the 00 00 ff ff the receiver appends ends it). Its last bits
// stand for hundreds of bytes still to come when the input is spent:
// Debian's lws 4.1.6 aborted on such a message in its own extension
// (assert, extension-permessage-deflate.c line 351).
function fixedBlock(prefix, matches) {
  const out = [];
  let acc = 0, n = 0;
  const put = (v, bits) => {
    for (let i = 0; i < bits; i++) {
      acc |= ((v >> i) & 1) << n;
      if (++n === 8) { out.push(acc); acc = 0; n = 0; }
    }
  };
  const code = (c, bits) => { // Huffman codes go most significant bit first
    let r = 0;
    for (let i = 0; i < bits; i++) r |= ((c >> i) & 1) << (bits - 1 - i);
    put(r, bits);
  };
  put(0, 1); put(1, 2); // not final, fixed codes
  for (const b of Buffer.from(prefix)) (b < 144 ? code(0x30 + b, 8) : code(0x190 + b - 144, 9));
  for (let i = 0; i < matches; i++) { code(0xc5, 8); code(0, 5); } // length 258, distance 1
  if (n) out.push(acc);
  return Buffer.from(out);
}

test('the answer says no context takeover both ways, and echoes server_max_window_bits', async () => {
  const a = await raw(PORT_A, STAFF, 'permessage-deflate; client_max_window_bits');
  assert.equal(a.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover; client_no_context_takeover');
  a.close();
  const b = await raw(PORT_A, STAFF, 'permessage-deflate; client_no_context_takeover; server_max_window_bits=10');
  assert.equal(b.headers['sec-websocket-extensions'],
    'permessage-deflate; client_no_context_takeover; server_no_context_takeover; server_max_window_bits=10');
  b.close();
  // only the first offer is taken
  const c = await raw(PORT_A, STAFF, 'permessage-deflate; server_max_window_bits=9, permessage-deflate');
  assert.equal(c.headers['sec-websocket-extensions'],
    'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9');
  c.close();
});

test('client messages: inflated whole whatever their last bits stand for; fragmented; too big; not deflate', async () => {
  const z = await raw(PORT_A, STAFF, 'permessage-deflate');
  // runs of 258 to 10,320 bytes in the last bits of a message: each one is
  // read (an error answers the text, which is not JSON) and omsd goes on
  for (let m = 1; m <= 40; m++) {
    const before = z.msgs.filter((x) => x.event === 'error').length;
    z.sendFrame(1, fixedBlock('{"event":"ping","data":"a', m), true);
    await waitFor(() => z.msgs.filter((x) => x.event === 'error').length > before, 5000);
  }
  z.send('ping');
  await z.next((x) => x.event === 'pong', 5000, 'pong after the runs');
  // a compressed message in three frames (RSV1 on the first only)
  const msg = Buffer.from(JSON.stringify({ event: 'subscribe_to_inventory', data: { filter: { productId: [7, 8] } } }));
  const d = zlib.deflateRawSync(msg, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
  const k = Math.floor(d.length / 3);
  z.sendFrame(1, d.subarray(0, k), true, false);
  z.sendFrame(0, d.subarray(k, 2 * k), false, false);
  z.sendFrame(0, d.subarray(2 * k), false, true);
  const conf = await z.next((x) => x.event === 'subscription_confirmed' && x.data.filter && x.data.filter.productId);
  assert.deepEqual(conf.data.filter, { productId: [7, 8] });
  // a few hundred bytes that inflate past max_frame_bytes (64 KiB): too_large, closed 1009
  const closed = new Promise((res) => z.sock.on('close', res));
  z.sendFrame(1, fixedBlock('{"event":"ping","data":"a', 300), true);
  const err = await z.next((x) => x.event === 'error' && x.data.code === 'too_large', 5000, 'too_large');
  assert.match(err.data.message, /65536/);
  await closed;
  const c1009 = z.frames.find((f) => f.opcode === 8);
  assert.equal(c1009.payload.readUInt16BE(0), 1009);
  // bytes that are not deflate: the connection fails, omsd does not
  const bad = await raw(PORT_A, STAFF, 'permessage-deflate');
  const gone = new Promise((res) => bad.sock.on('close', res));
  bad.sendFrame(1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x13]), true);
  await gone;
  const after = await raw(PORT_A, STAFF, 'permessage-deflate');
  after.send('ping');
  await after.next((x) => x.event === 'pong');
  after.close();
});

test('ws (Node) negotiates it and gets the same events as a client that does not; compression off: not offered back', async () => {
  const open = (port, perMessageDeflate) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/events`, { headers: { Authorization: 'Bearer ' + STAFF }, perMessageDeflate });
    const got = [];
    ws.on('message', (m) => got.push(JSON.parse(m.toString())));
    ws.on('open', () => ws.send(JSON.stringify({ event: 'subscribe_to_orders' })));
    ws.on('error', reject);
    const t = setInterval(() => { if (got.some((f) => f.event === 'subscription_confirmed')) { clearInterval(t); resolve({ ws, got }); } }, 20);
  });
  const z = await open(PORT_A, { threshold: 0 }); // it compresses its own messages too
  const plain = await open(PORT_A, false);
  const off = await open(PORT_B, { threshold: 0 });
  assert.equal(z.ws.extensions, 'permessage-deflate');
  assert.equal(plain.ws.extensions, '');
  assert.equal(off.ws.extensions, '');
  const p = 'ws-' + uniq();
  await emit(orders(p, 10));
  const ids = (c) => c.got.filter((f) => f.event === 'order_update' && f.data.data.orderId.startsWith(p)).map((f) => JSON.stringify(f));
  await waitFor(() => ids(z).length === 10 && ids(plain).length === 10 && ids(off).length === 10);
  assert.deepEqual(ids(z), ids(plain));
  // another instance: the same events, in its own interleaving of partitions
  assert.deepEqual(ids(off).map((s) => JSON.parse(s).data.data.orderId).sort(), ids(plain).map((s) => JSON.parse(s).data.data.orderId).sort());
  // bytes read on the socket: fewer when compressed
  const zr = z.ws._socket.bytesRead, pr = plain.ws._socket.bytesRead;
  assert.ok(zr < pr, `${zr} bytes compressed vs ${pr}`);
  for (const c of [z, plain, off]) c.ws.close();
});

test('Socket.IO over WebSocket negotiates it and gets its events', async () => {
  const s = io(`http://127.0.0.1:${PORT_A}/events`, { auth: { token: STAFF }, transports: ['websocket'], reconnection: false, forceNew: true });
  const got = [];
  s.on('order_update', (d) => got.push(d));
  await new Promise((res, rej) => { s.once('connected', res); s.once('connect_error', rej); });
  assert.equal(s.io.engine.transport.ws.extensions, 'permessage-deflate');
  await s.timeout(5000).emitWithAck('subscribe_to_orders');
  const p = 'sz-' + uniq();
  await emit(orders(p, 5));
  await waitFor(() => got.filter((d) => d.data.orderId.startsWith(p)).length === 5);
  s.close();
});
