#!/usr/bin/env node
/*
 * Interop scenario client on the real Node.js VSOA client (npm vsoa@1.5.1, native libvsoa core).
 *
 * Usage: NODE_PATH=DIR/node/node_modules node tests/peers/node_interop.js HOST PORT
 *          [--password PW] [--only NAME[,NAME...]] [--skip NAME[,NAME...]] [--timeout S]
 *
 * Same checks and output as py_interop.py: one JSON line
 *   {"ok":bool,"checks":{"<name>":{"ok":bool,...details},...}[,"skipped":[...]]}
 * Skipped checks appear as {"ok":true,"skipped":true,"reason":...}.
 * Connect failure: {"ok":false,"error":"<Error.message>"[,"status":N],"checks":{}} (exit 1).
 * Exit codes: 0 all checks ok, 1 a check failed or connect failed, 2 usage/env error,
 * 3 hard timeout (default 20 s; the line then carries "error" and the checks finished so far).
 * Every check is bounded (2 s per reply/message, 5 s per stream). Connects only to loopback.
 */
'use strict';
const { emit, loadVsoa, parseOptions, loopbackTarget, jsonable, hex, errObj, pattern } = require('./peerlib.js');
const crypto = require('crypto');

const CHECKS = ['rpc_get', 'rpc_set', 'user_status', 'prefix_route', 'sleep_parallel',
  'subscribe_single', 'subscribe_list', 'publish_quick', 'datagram_tcp',
  'datagram_quick', 'client_datagram_tcp', 'client_datagram_quick',
  'stream_echo', 'stream_download'];

// Reasons printed for --skip NAME (documented peer-library limitations, see NOTES.md).
const SKIP_REASONS = {};

const CONNECT_TIMEOUT = 5000;
const OP = 2000;           // one reply / one message
const STREAM_T = 5000;     // one stream transfer
const ECHO_SIZE = 100 * 1024;
const DOWNLOAD_SIZE = 1024 * 1024;

const results = {};
let running = null;
let hardTimer = null;

function parseArgs(argv) {
  const a = { password: undefined, only: [], skip: [], timeout: 20 };
  const list = s => {
    const out = s.split(',').filter(x => x);
    const bad = out.filter(x => !CHECKS.includes(x));
    if (bad.length) throw new Error('unknown check(s): ' + bad.join(','));
    return out;
  };
  const pos = parseOptions(argv, (k, val) => {
    if (k === '--password') a.password = val();
    else if (k === '--only') a.only = list(val());
    else if (k === '--skip') a.skip = list(val());
    else if (k === '--timeout') a.timeout = Number(val());
    else return false;
    return true;
  });
  loopbackTarget(a, pos, 'usage: node_interop.js HOST PORT [--password PW] [--only A,B] [--skip A,B]');
  if (!(a.timeout > 0 && a.timeout <= 600)) throw new Error('bad --timeout');
  return a;
}

const sleep = ms => new Promise(r => setTimeout(r, ms));
const deepEq = (x, y) => JSON.stringify(x) === JSON.stringify(y);
function firstMismatch(got, want) {
  const n = Math.min(got.length, want.length);
  for (let i = 0; i < n; i++) if (got[i] !== want[i]) return i;
  return got.length === want.length ? null : n;
}

/* Received publishes / datagrams, with bounded waits. */
class Inbox {
  constructor() { this.items = []; this.waiters = []; }
  add(url, payload, quick) {
    this.items.push({ url, param: jsonable(payload && payload.param), data_hex: hex(payload && payload.data), quick: !!quick });
    this.waiters.forEach(w => w());
  }
  mark() { return this.items.length; }
  wait(since, pred, timeout) {
    return new Promise(resolve => {
      const check = () => pred(this.items.slice(since));
      if (check()) return resolve(this.items.slice(since));
      let t = null;
      const w = () => { if (check()) fin(); };
      const fin = () => {
        clearTimeout(t);
        this.waiters = this.waiters.filter(x => x !== w);
        resolve(this.items.slice(since));
      };
      t = setTimeout(fin, timeout);
      this.waiters.push(w);
    });
  }
}

async function main() {
  let a;
  try { a = parseArgs(process.argv.slice(2)); } catch (e) { return emit({ ok: false, error: e.message }, 2); }
  hardTimer = setTimeout(() => emit({ ok: false, error: `hard timeout (${a.timeout} s) during ${running}`, checks: results }, 3), a.timeout * 1000);
  const vsoa = loadVsoa();
  if (!vsoa) return;
  const todo = CHECKS.filter(n => !a.only.length || a.only.includes(n));

  const opt = {};
  if (a.password !== undefined) opt.passwd = a.password;
  const cli = new vsoa.Client(opt);
  const msgs = new Inbox();
  const dgrams = new Inbox();
  let connected = false;
  let lateErrors = [];
  cli.on('error', err => {
    if (!connected) emit(Object.assign({ ok: false }, errObj(err, { checks: {} })), 1);
    else lateErrors.push(err.message);
  });
  cli.on('message', (url, payload, quick) => msgs.add(url, payload, quick));
  cli.on('datagram', (url, payload, quick) => dgrams.add(url, payload, quick));

  await new Promise(resolve => {
    cli.connect({ domain: vsoa.AF_INET, addr: a.host, port: a.port }, (err) => {
      if (err) return emit(Object.assign({ ok: false }, errObj(err, { checks: {} })), 1);
      connected = true;
      resolve();
    }, CONNECT_TIMEOUT);
  });

  // ---- helpers -----------------------------------------------------------------------------
  function rpc(url, set, param, data, timeout = OP) {
    return new Promise(resolve => {
      const payload = {};
      if (param !== undefined) payload.param = param;
      if (data !== undefined) payload.data = data;
      try {
        cli.call(url, { method: set ? vsoa.method.SET : vsoa.method.GET }, payload, (err, p, tunid) => {
          if (err && err.status === undefined) return resolve({ error: err.message });
          const r = { status: err ? err.status : 0, param: jsonable(p && p.param), data_hex: hex(p && p.data) };
          if (tunid !== undefined) r.tunid = tunid;
          resolve(r);
        }, timeout);
      } catch (e) { resolve({ error: e.message }); }
    });
  }
  function subscribe(url) {
    return new Promise(resolve => {
      try { cli.subscribe(url, err => resolve(!err), OP); } catch (e) { resolve(false); }
    });
  }
  async function publishSet(sub, pubs, want) {
    const d = { subscribed: await subscribe(sub) };
    if (!d.subscribed) { d.ok = false; return d; }
    const since = msgs.mark();
    d.publish_status = {};
    const sent = {};
    for (let i = 0; i < pubs.length; i++) {
      const u = pubs[i];
      sent[u] = { i, u };
      const r = await rpc('/publish', false, { url: u, param: sent[u], quick: false });
      d.publish_status[u] = r.status !== undefined ? r.status : r.error;
    }
    // a failed /publish fails the check anyway: then only collect what came, do not wait
    const allOk = Object.values(d.publish_status).every(s => s === 0);
    await msgs.wait(since, it => want.every(w => it.some(m => m.url === w)), allOk ? OP : 0);
    await sleep(200);                      // grace period for messages that must not come
    const got = msgs.items.slice(since);
    d.received = got.map(m => m.url);
    d.expected = [...want].sort();
    const badParam = got.filter(m => sent[m.url] && !deepEq(m.param, sent[m.url]));
    if (badParam.length) d.bad_param = badParam;
    d.ok = Object.values(d.publish_status).every(s => s === 0)
      && deepEq([...d.received].sort(), d.expected) && !badParam.length && !got.some(m => m.quick);
    return d;
  }

  // ---- checks ------------------------------------------------------------------------------
  async function rpcGet() {
    const r = await rpc('/echo', false, { a: 1 }, Buffer.from([1, 2, 3]));
    return { ok: r.status === 0 && deepEq(r.param, { a: 1 }) && r.data_hex === '010203', reply: r };
  }
  async function rpcSet() {
    const s = await rpc('/method', true);
    const g = await rpc('/method', false);
    return {
      ok: s.status === 0 && deepEq(s.param, { method: 'SET' }) && g.status === 0 && deepEq(g.param, { method: 'GET' }),
      set: s, get: g
    };
  }
  async function userStatus() {
    const r200 = await rpc('/status', false, { status: 200 });
    const r2 = await rpc('/status', false, { status: 2 });
    return { ok: r200.status === 200 && r2.status === 2, status_200: r200, status_2: r2 };
  }
  async function prefixRoute() {
    const d = {};
    let ok = true;
    for (const u of ['/files', '/files/a', '/files/a/b']) {
      d[u] = await rpc(u);
      ok = ok && d[u].status === 0 && deepEq(d[u].param, { url: u });
    }
    for (const u of ['/nope', '/filesx']) {
      d[u] = await rpc(u);
      ok = ok && d[u].status === 3;
    }
    d.ok = ok;
    return d;
  }
  async function sleepParallel() {
    const t0 = Date.now();
    const order = [];
    const one = (name, url, param) => new Promise(resolve => {
      cli.call(url, {}, { param }, (err) => {
        order.push({ rpc: name, status: err ? (err.status !== undefined ? err.status : err.message) : 0, ms: Date.now() - t0 });
        resolve();
      }, 3000);
    });
    await Promise.all([one('sleep', '/sleep', { ms: 300 }), one('echo', '/echo', { e: 1 })]);
    return {
      ok: deepEq(order.map(o => o.rpc), ['echo', 'sleep']) && order.every(o => o.status === 0) && order[1].ms >= 250,
      replies: order
    };
  }
  async function publishQuick() {
    const d = { subscribed: await subscribe('/q') };
    if (!d.subscribed) { d.ok = false; return d; }
    const since = msgs.mark();
    const r = await rpc('/publish', false, { url: '/q', param: { q: 1 }, quick: true });
    d.publish_status = r.status !== undefined ? r.status : r.error;
    const got = await msgs.wait(since, it => it.some(m => m.url === '/q'), r.status === 0 ? OP : 200);
    d.received = got;
    const q = got.filter(m => m.url === '/q');
    d.ok = r.status === 0 && q.length === 1 && q[0].quick === true && deepEq(q[0].param, { q: 1 });
    return d;
  }
  async function serverDatagram(quick) {
    const since = dgrams.mark();
    const r = await rpc('/datagram', false, { url: '/d', param: { k: 1 }, quick });
    const got = await dgrams.wait(since, it => it.some(m => m.url === '/d'), r.status === 0 ? OP : 200);
    const dd = got.filter(m => m.url === '/d');
    return {
      ok: r.status === 0 && dd.length === 1 && dd[0].quick === quick && deepEq(dd[0].param, { k: 1 }),
      reply_status: r.status !== undefined ? r.status : r.error, received: got
    };
  }
  async function clientDatagram(quick) {
    const since = dgrams.mark();
    const data = Buffer.from([7, 0, 255, 16]);
    let sendError;
    try { cli.datagram('/dg/echo', { param: { n: 7 }, data }, quick); } catch (e) { sendError = e.message; }
    const got = await dgrams.wait(since, it => it.some(m => m.url === '/dg/echo'), OP);
    const dd = got.filter(m => m.url === '/dg/echo');
    const d = {
      ok: !sendError && dd.length === 1 && dd[0].quick === quick && deepEq(dd[0].param, { n: 7 }) && dd[0].data_hex === data.toString('hex'),
      received: got
    };
    if (sendError) d.send_error = sendError;
    return d;
  }
  async function openStream(url, param) {
    const d = { reply: await rpc(url, false, param) };
    if (d.reply.status !== 0 || !d.reply.tunid) { d.error = 'no tunid in reply'; return [d, null, null]; }
    const box = { chunks: [], len: 0, up: false, ended: false, closed: false, error: null, waiters: [] };
    let st;
    try { st = cli.createStream(d.reply.tunid, STREAM_T); } catch (e) { d.error = 'createStream: ' + e.message; return [d, null, null]; }
    const kick = () => box.waiters.forEach(w => w());
    st.on('connect', () => { box.up = true; kick(); });
    st.on('data', c => { box.chunks.push(c); box.len += c.length; kick(); });
    st.on('end', () => { box.ended = true; kick(); });
    st.on('close', () => { box.closed = true; kick(); });
    st.on('timeout', () => { box.error = 'stream connect timeout'; kick(); });
    st.on('error', e => { box.error = e.message; kick(); });
    return [d, st, box];
  }
  function waitBox(box, pred, deadline) {
    return new Promise(resolve => {
      if (pred()) return resolve(true);
      let t = null;
      const w = () => { if (pred()) fin(true); };
      const fin = v => { clearTimeout(t); box.waiters = box.waiters.filter(x => x !== w); resolve(v); };
      t = setTimeout(() => fin(pred()), Math.max(0, deadline - Date.now()));
      box.waiters.push(w);
    });
  }
  async function streamEcho() {
    const [d, st, box] = await openStream('/stream/echo');
    if (!st) { d.ok = false; return d; }
    const deadline = Date.now() + STREAM_T;
    await waitBox(box, () => box.up || box.error || box.closed, deadline);
    d.connected = box.up;
    if (!box.up) { d.ok = false; d.stream_error = box.error; st.destroy(); return d; }
    const payload = crypto.randomBytes(ECHO_SIZE);
    st.write(payload);
    await waitBox(box, () => box.len >= ECHO_SIZE || box.ended || box.error, deadline);
    const got = Buffer.concat(box.chunks);
    const mm = firstMismatch(got, payload);
    Object.assign(d, { received: got.length, closed_early: box.ended });
    if (box.error) d.stream_error = box.error;
    if (mm !== null) d.first_mismatch = mm;
    d.ok = got.length === ECHO_SIZE && mm === null;
    st.destroy();
    return d;
  }
  async function streamDownload() {
    const [d, st, box] = await openStream('/stream/download', { size: DOWNLOAD_SIZE });
    if (!st) { d.ok = false; return d; }
    const deadline = Date.now() + STREAM_T;
    await waitBox(box, () => box.ended || box.error, deadline);
    const got = Buffer.concat(box.chunks);
    const mm = firstMismatch(got, pattern(DOWNLOAD_SIZE));
    Object.assign(d, { connected: box.up, received: got.length, server_closed: box.ended });
    if (box.error) d.stream_error = box.error;
    if (mm !== null) { d.first_mismatch = mm; d.got_at_mismatch = got.subarray(mm, mm + 8).toString('hex'); }
    d.ok = box.ended && got.length === DOWNLOAD_SIZE && mm === null;
    st.destroy();
    return d;
  }

  const fns = {
    rpc_get: rpcGet, rpc_set: rpcSet, user_status: userStatus, prefix_route: prefixRoute,
    sleep_parallel: sleepParallel,
    subscribe_single: () => publishSet('/a/', ['/a/b', '/ab', '/a'], ['/a/b', '/a']),
    subscribe_list: () => publishSet(['/x', '/y/'], ['/x', '/y/z', '/xx'], ['/x', '/y/z']),
    publish_quick: publishQuick,
    datagram_tcp: () => serverDatagram(false), datagram_quick: () => serverDatagram(true),
    client_datagram_tcp: () => clientDatagram(false), client_datagram_quick: () => clientDatagram(true),
    stream_echo: streamEcho, stream_download: streamDownload
  };

  const skipped = [];
  for (const name of todo) {
    if (a.skip.includes(name)) {
      results[name] = { ok: true, skipped: true, reason: SKIP_REASONS[name] || 'skipped by --skip' };
      skipped.push(name);
      continue;
    }
    running = name;
    const t = Date.now();
    let r;
    try { r = await fns[name](); } catch (e) { r = { ok: false, error: `${e.name}: ${e.message}` }; }
    r.ms = Date.now() - t;
    if (lateErrors.length) { r.client_errors = lateErrors; lateErrors = []; }
    results[name] = r;
  }
  running = null;
  const out = { ok: Object.values(results).every(r => r.ok), checks: results };
  if (skipped.length) out.skipped = skipped;
  try { cli.close(); } catch (e) { /* ignore */ }
  emit(out, out.ok ? 0 : 1);
}

main().catch(e => emit({ ok: false, error: `${e.name}: ${e.message}`, checks: results }, 2));
