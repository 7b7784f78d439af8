/*
 * Helpers shared by the Node.js peer scripts (node_client.js, node_interop.js,
 * node_echo_server.js): `require('./peerlib.js')`.
 */
'use strict';
const path = require('path');

let done = false;
/*
 * Print one compact JSON line. With an exit `code`: exit once it is written, and print no
 * further line that exits (the first final line wins); without one: just print.
 */
function emit(obj, code) {
  if (done && code !== undefined) return;
  if (code !== undefined) done = true;
  process.stdout.write(JSON.stringify(obj) + '\n', () => { if (code !== undefined) process.exit(code); });
}

/* require('vsoa'), else the copy install.sh puts in <repo>/target/peers; null (after emitting exit 2) if neither loads. */
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

/*
 * Walk argv: onOption(k, val) handles option k (val() takes its value) and returns true, or
 * returns false for an unknown one ('--x' then throws 'unknown option --x'; other words are
 * positional). Returns the positional arguments.
 */
function parseOptions(argv, onOption) {
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const val = () => { if (i + 1 >= argv.length) throw new Error('missing value for ' + k); return argv[++i]; };
    if (onOption(k, val)) continue;
    if (k.startsWith('--')) throw new Error('unknown option ' + k);
    pos.push(k);
  }
  return pos;
}

/* HOST PORT of a client's command line into a.host/a.port; throws unless both are sane and HOST is loopback. */
function loopbackTarget(a, pos, usage) {
  if (pos.length !== 2) throw new Error(usage);
  a.host = pos[0] === 'localhost' ? '127.0.0.1' : pos[0];
  a.port = Number(pos[1]);
  if (!Number.isInteger(a.port) || a.port <= 0 || a.port > 65535) throw new Error('bad port');
  if (!a.host.startsWith('127.')) throw new Error('refusing non-loopback host ' + pos[0]);
  return a;
}

/* A received param: text for a Buffer, null when absent. */
function jsonable(v) {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return v === undefined ? null : v;
}
function hex(b) { return Buffer.isBuffer(b) ? b.toString('hex') : ''; }

/* {error: message[, ...extra][, status]} of a vsoa Error. */
function errObj(err, extra) {
  const o = Object.assign({ error: err.message }, extra);
  if (err.status !== undefined) o.status = err.status;
  return o;
}

/* n bytes, byte i = i % 251 (the stream download pattern). */
function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

module.exports = { emit, loadVsoa, parseOptions, loopbackTarget, jsonable, hex, errObj, pattern };
