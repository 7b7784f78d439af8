#!/usr/bin/env node
/*
 * Real Node.js VSOA client (npm vsoa@1.5.1, native libvsoa core) for psvc interop tests.
 *
 * Usage: NODE_PATH=DIR/node/node_modules node tests/peers/node_client.js HOST PORT [--password PW]
 *          [--call URL [--set] [--param JSON] [--data-hex HEX]] [--subscribe URL [--count N]]
 *
 * Prints exactly one JSON line on stdout:
 *   success: {"ok":true,"info":<server info as received>,"ping":true|false[,"call":{...}][,"messages":[...]]}
 *   failure: {"ok":false,"error":"<Error.message from vsoa>"[,"status":N]}   (exit 1)
 *            e.g. wrong password -> {"ok":false,"error":"status","status":1}
 *   other:   {"ok":false,"error":"<text>"}  (exit 2; 3 = hard timeout)
 * Connects only to loopback. Hard overall timeout: 10 s.
 */
'use strict';
const path = require('path');

const HARD_TIMEOUT = 10000;
const CONNECT_TIMEOUT = 5000;
const OP_TIMEOUT = 2000;

let done = false;
function emit(obj, code) {
  if (done) return;
  done = true;
  process.stdout.write(JSON.stringify(obj) + '\n', () => process.exit(code));
}
setTimeout(() => emit({ ok: false, error: `hard timeout (${HARD_TIMEOUT / 1000} s)` }, 3), HARD_TIMEOUT);

function loadVsoa() {
  try {
    return require('vsoa');
  } catch (e) {
    try {
      return require(path.join(__dirname, '..', '..', 'target', 'peers', 'node', 'node_modules', 'vsoa'));
    } catch (e2) {
      emit({ ok: false, error: 'node vsoa not loadable (run tests/peers/install.sh, set NODE_PATH): ' + e.message }, 2);
      return null;
    }
  }
}

function parseArgs(argv) {
  const a = { password: undefined, count: 1, set: false };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const val = () => { if (i + 1 >= argv.length) throw new Error('missing value for ' + k); return argv[++i]; };
    if (k === '--password') a.password = val();
    else if (k === '--call') a.call = val();
    else if (k === '--set') a.set = true;
    else if (k === '--param') a.param = val();
    else if (k === '--data-hex') a.dataHex = val();
    else if (k === '--subscribe') a.subscribe = val();
    else if (k === '--count') a.count = Number(val());
    else if (k.startsWith('--')) throw new Error('unknown option ' + k);
    else pos.push(k);
  }
  if (pos.length !== 2) throw new Error('usage: node_client.js HOST PORT [--password PW]');
  a.host = pos[0] === 'localhost' ? '127.0.0.1' : pos[0];
  a.port = Number(pos[1]);
  if (!Number.isInteger(a.port) || a.port <= 0 || a.port > 65535) throw new Error('bad port');
  if (!a.host.startsWith('127.')) throw new Error('refusing non-loopback host ' + pos[0]);
  return a;
}

function jsonable(v) {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return v === undefined ? null : v;
}
function hex(b) { return Buffer.isBuffer(b) ? b.toString('hex') : ''; }
function errObj(err) {
  const o = { error: err.message };
  if (err.status !== undefined) o.status = err.status;
  return o;
}

function main() {
  let a;
  try { a = parseArgs(process.argv.slice(2)); } catch (e) { return emit({ ok: false, error: e.message }, 2); }
  const vsoa = loadVsoa();
  if (!vsoa) return;

  const opt = {};
  if (a.password !== undefined) opt.passwd = a.password;
  const cli = new vsoa.Client(opt);
  const msgs = [];
  let onEnough = null;

  // Connection failures surface either through the connect callback or only through 'error'
  // (e.g. a bad magic byte gives 'parser failed' with no callback), so watch both.
  let connected = false;
  cli.on('error', err => {
    if (!connected) emit(Object.assign({ ok: false }, errObj(err)), 1);
  });
  cli.on('message', (url, payload, quick) => {
    msgs.push({ url, param: jsonable(payload && payload.param), data_hex: hex(payload && payload.data), quick: !!quick });
    if (msgs.length >= a.count && onEnough) onEnough();
  });

  const finish = out => { try { cli.close(); } catch (e) { /* ignore */ } emit(out, 0); };

  cli.connect({ domain: vsoa.AF_INET, addr: a.host, port: a.port }, (err, info) => {
    if (err) return emit(Object.assign({ ok: false }, errObj(err)), 1);
    connected = true;
    const out = { ok: true, info: jsonable(info), ping: false };
    cli.ping(perr => {
      out.ping = !perr;
      doCall(out);
    }, OP_TIMEOUT);
  }, CONNECT_TIMEOUT);

  function doCall(out) {
    if (!a.call) return doSub(out);
    const payload = {};
    if (a.param !== undefined) payload.param = Buffer.from(a.param); // Buffer: sent verbatim (a string would be JSON-quoted)
    if (a.dataHex) payload.data = Buffer.from(a.dataHex, 'hex');
    cli.call(a.call, { method: a.set ? vsoa.method.SET : vsoa.method.GET }, payload, (err, p) => {
      if (err && err.status === undefined) out.call = errObj(err);
      else out.call = { status: err ? err.status : 0, param: jsonable(p && p.param), data_hex: hex(p && p.data) };
      doSub(out);
    }, OP_TIMEOUT);
  }

  function doSub(out) {
    if (!a.subscribe) return finish(out);
    cli.subscribe(a.subscribe, err => {
      out.subscribed = !err;
      if (err) { out.messages = []; return finish(out); }
      const t = setTimeout(() => { out.messages = msgs.slice(0, a.count); finish(out); }, OP_TIMEOUT);
      onEnough = () => { clearTimeout(t); out.messages = msgs.slice(0, a.count); finish(out); };
      if (msgs.length >= a.count) onEnough();
    }, OP_TIMEOUT);
  }
}

try { main(); } catch (e) { emit({ ok: false, error: `${e.name}: ${e.message}` }, 2); }
