#!/usr/bin/env node
/*
 * Real Node.js VSOA server (npm vsoa@1.5.1, native libvsoa core) with the routes of the psvc
 * interop reference server (same routes as py_echo_server.py); also used as a benchmark peer.
 *
 * Usage: NODE_PATH=DIR/node/node_modules node tests/peers/node_echo_server.js
 *          [--password PW] [--info TEXT] [--port N] [--lifetime S] [--verbose]
 *
 * Listens on 127.0.0.1 (a free port unless --port; TCP and the UDP quick channel share it),
 * prints exactly one JSON line {"port":N} once listening, then serves until killed
 * (SIGTERM/SIGINT -> exit 0), until its parent process dies, or until --lifetime seconds have
 * passed (default 10; 0 = no limit). --info: parsed as JSON when it starts with '{' or '['
 * (default {"name":"node_echo_server"}), otherwise sent as a JSON string.
 * On failure before listening: {"ok":false,"error":"..."} and exit 1 (2 = vsoa not loadable).
 *
 * RPC   /echo             reply status 0 with the request's param (re-serialised as compact JSON)
 *                         and data
 * RPC   /method           reply param {"method":"GET"|"SET"}
 * RPC   /status           param {"status":n} (0..255): empty reply with status n (bad param: 2)
 * RPC   /files/  (prefix) /files, /files/a, /files/a/b ...: reply param {"url":<requested url>}
 * RPC   /sleep            param {"ms":n} (0..10000): empty status-0 reply after n ms (timer)
 * RPC   /publish          param {"url":U,"param":P,"quick":bool[,"data_hex":H]}: publish U with
 *                         param = JSON text of P (quick: over UDP), then empty status-0 reply
 * RPC   /datagram         same param: DATAGRAM U to the caller only, then empty status-0 reply
 * RPC   /stream/echo      server stream, reply with its tunid; echoes every byte until closed
 * RPC   /stream/download  param {"size":n} (0..64 MiB): stream, reply with tunid; once connected
 *                         send n bytes, byte i = i % 251, then close
 * DGRAM /dg/echo          sent back to the sender unchanged (quick if it came over UDP)
 * No default "/" route: other URLs get status 3 from the library.
 *
 * Library workarounds (see NOTES.md): server.createStream() of vsoa 1.5.1 listens on all
 * interfaces ('::', it reads saddr.addr from net's {address}) - this script builds the
 * library's own ServerStream class bound to 127.0.0.1 and waits for 'listening' before reading
 * its tunid. Params are sent as JSON text Buffers because the packer drops JSON scalars.
 */
'use strict';
const path = require('path');
const net = require('net');
const dgram = require('dgram');
const { emit, loadVsoa, parseOptions, pattern } = require('./peerlib.js');

const MAX_SLEEP_MS = 10000;
const MAX_DOWNLOAD = 64 * 1024 * 1024;
const STREAM_TIMEOUT = 5000;


function parseArgs(argv) {
  const a = { password: '', info: undefined, port: 0, lifetime: 10, verbose: false };
  parseOptions(argv, (k, val) => {
    if (k === '--password') a.password = val();
    else if (k === '--info') a.info = val();
    else if (k === '--port') a.port = Number(val());
    else if (k === '--lifetime') a.lifetime = Number(val());
    else if (k === '--verbose') a.verbose = true;
    else throw new Error('unknown argument ' + k);
    return true;
  });
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) throw new Error('bad --port');
  if (!(a.lifetime >= 0)) throw new Error('bad --lifetime');
  return a;
}

/* A port free for both TCP and UDP on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const t = net.createServer();
    t.on('error', reject);
    t.listen(0, '127.0.0.1', () => {
      const port = t.address().port;
      const u = dgram.createSocket('udp4');
      u.on('error', () => { u.close(); t.close(() => resolve(0)); });
      u.bind(port, '127.0.0.1', () => { u.close(); t.close(() => resolve(port)); });
    });
  });
}

/* JSON text of v as a Buffer (sent verbatim; the packer would drop scalars, quote strings). */
function jsonBuf(v) { return Buffer.from(JSON.stringify(v)); }
function paramOut(p) {
  if (p === undefined || p === null) return undefined;
  return Buffer.isBuffer(p) ? p : jsonBuf(p);
}
function payloadOf(param, data) {
  const o = {};
  if (param !== undefined) o.param = param;
  if (data !== undefined && data !== null) o.data = data;
  return Object.keys(o).length ? o : undefined;
}
const isObj = v => v && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v);

async function main() {
  let a;
  try { a = parseArgs(process.argv.slice(2)); } catch (e) { return emit({ ok: false, error: e.message }, 2); }
  const vsoa = loadVsoa();
  if (!vsoa) return;
  const ServerStream = require(path.join(path.dirname(require.resolve('vsoa')), 'server_stream'));
  const log = (...args) => { if (a.verbose) console.error('node_echo_server:', ...args); };

  let info = { name: 'node_echo_server' };
  if (a.info !== undefined) {
    if (/^\s*[{[]/.test(a.info)) {
      try { info = JSON.parse(a.info); } catch (e) { return emit({ ok: false, error: 'bad --info JSON: ' + e.message }, 1); }
    } else {
      info = a.info;
    }
  }

  const server = new vsoa.Server({ info, passwd: a.password });
  server.onclient = (cli, conn) => log('client', cli._cid, conn ? 'connected' : 'disconnected');
  const P = p => (p && isObj(p.param) ? p.param : {});
  const reply = (cli, status, seqno, payload, tunid) => {
    try { cli.reply(status, seqno, payload, tunid); } catch (e) { log('reply failed:', e.message); }
  };

  server.on('/echo', (cli, req, p) => reply(cli, 0, req.seqno, payloadOf(paramOut(p && p.param), p && p.data)));
  server.on('/method', (cli, req) => reply(cli, 0, req.seqno, { param: { method: req.method ? 'SET' : 'GET' } }));
  server.on('/status', (cli, req, p) => {
    const n = P(p).status;
    reply(cli, Number.isInteger(n) && n >= 0 && n <= 255 ? n : 2, req.seqno);
  });
  server.on('/files/', (cli, req) => reply(cli, 0, req.seqno, { param: { url: req.url } }));
  server.on('/sleep', (cli, req, p) => {
    const ms = P(p).ms === undefined ? 0 : P(p).ms;
    if (typeof ms !== 'number' || !(ms >= 0 && ms <= MAX_SLEEP_MS)) return reply(cli, 2, req.seqno);
    setTimeout(() => reply(cli, 0, req.seqno), ms);
  });

  function messageArgs(p) {
    const q = P(p);
    if (typeof q.url !== 'string' || !q.url.startsWith('/')) return null;
    let data;
    if (typeof q.data_hex === 'string') data = Buffer.from(q.data_hex, 'hex');
    const param = q.param === undefined || q.param === null ? undefined : jsonBuf(q.param);
    return [q.url, payloadOf(param, data), !!q.quick];
  }
  server.on('/publish', (cli, req, p) => {
    const m = messageArgs(p);
    if (!m) return reply(cli, 2, req.seqno);
    try { server.publish(m[0], m[1], m[2]); } catch (e) { log('publish failed:', e.message); }
    log('publish', m[0], m[2]);
    reply(cli, 0, req.seqno);
  });
  server.on('/datagram', (cli, req, p) => {
    const m = messageArgs(p);
    if (!m) return reply(cli, 2, req.seqno);
    try { cli.datagram(m[0], m[1] || {}, m[2]); } catch (e) { log('datagram failed:', e.message); }
    log('datagram', m[0], m[2]);
    reply(cli, 0, req.seqno);
  });

  /* The library's ServerStream, bound to loopback; calls back with the stream once listening. */
  function openStream(cli, req, onConnect) {
    let st;
    try {
      st = new ServerStream({ addr: '127.0.0.1', port: 0 }, undefined, STREAM_TIMEOUT);
    } catch (e) {
      log('stream failed:', e.message);
      return reply(cli, 6, req.seqno);
    }
    st.on('error', e => log('stream error:', e.message));
    st.on('timeout', () => log('stream timeout (no client)'));
    st.on('connect', () => onConnect(st));
    st._srv.on('error', e => { log('stream listen failed:', e.message); reply(cli, 6, req.seqno); });
    st._srv.on('listening', () => reply(cli, 0, req.seqno, undefined, st.tunid));
    return st;
  }
  server.on('/stream/echo', (cli, req) => {
    openStream(cli, req, st => {
      log('echo stream connected');
      st.on('data', d => st.write(d));
    });
  });
  server.on('/stream/download', (cli, req, p) => {
    const n = P(p).size === undefined ? 0 : P(p).size;
    if (!Number.isInteger(n) || n < 0 || n > MAX_DOWNLOAD) return reply(cli, 2, req.seqno);
    openStream(cli, req, st => {
      log('download stream connected, sending', n);
      st.write(pattern(n));
      st.end();
    });
  });

  server.ondata = (cli, url, payload, quick) => {
    if (url !== '/dg/echo') return;
    try {
      cli.datagram(url, payloadOf(paramOut(payload && payload.param), payload && payload.data) || {}, quick);
    } catch (e) { log('dg echo failed:', e.message); }
  };

  /* Start: TCP listen callback and UDP bind both done. */
  function start(port) {
    return new Promise(resolve => {
      let tcp = false, udp = false, settled = false, timer = null;
      const fin = err => {
        if (settled) return;
        if (err) {
          settled = true;
          clearTimeout(timer);
          try { server.close(); } catch (e) { /* ignore */ }
          return resolve(err);
        }
        if (tcp && udp) { settled = true; clearTimeout(timer); resolve(null); }
      };
      try {
        server.start({ domain: vsoa.AF_INET, addr: '127.0.0.1', port }, err => { tcp = true; fin(err); });
      } catch (e) { return fin(e); }
      server._quick.on('error', e => fin(e));
      server._quick.on('listening', () => { udp = true; fin(null); });
      timer = setTimeout(() => fin(new Error('listen timeout')), 3000);
    });
  }
  let port = 0;
  let lastErr = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    const p = a.port || await freePort();
    if (!p) continue;
    lastErr = await start(p);
    if (!lastErr) { port = p; break; }
    if (a.port) break;
  }
  if (!port) return emit({ ok: false, error: 'listen failed: ' + (lastErr ? lastErr.message : 'no free port') }, 1);
  emit({ port });
  log('listening on 127.0.0.1:' + port, 'password=' + JSON.stringify(a.password), 'info=' + JSON.stringify(info));

  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
  const parent = process.ppid;
  const started = Date.now();
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);     // parent (the test) died: do not linger
    if (a.lifetime > 0 && Date.now() - started >= a.lifetime * 1000) process.exit(0);
  }, 50);
}

main().catch(e => emit({ ok: false, error: `${e.name}: ${e.message}` }, 1));
