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
const { emit, loadVsoa, parseOptions, loopbackTarget, jsonable, hex, errObj } = require('./peerlib.js');

const HARD_TIMEOUT = 10000;
const CONNECT_TIMEOUT = 5000;
const OP_TIMEOUT = 2000;

setTimeout(() => emit({ ok: false, error: `hard timeout (${HARD_TIMEOUT / 1000} s)` }, 3), HARD_TIMEOUT);

function parseArgs(argv) {
  const a = { password: undefined, count: 1, set: false };
  const pos = parseOptions(argv, (k, val) => {
    if (k === '--password') a.password = val();
    else if (k === '--call') a.call = val();
    else if (k === '--set') a.set = true;
    else if (k === '--param') a.param = val();
    else if (k === '--data-hex') a.dataHex = val();
    else if (k === '--subscribe') a.subscribe = val();
    else if (k === '--count') a.count = Number(val());
    else return false;
    return true;
  });
  return loopbackTarget(a, pos, 'usage: node_client.js HOST PORT [--password PW]');
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
