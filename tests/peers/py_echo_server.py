#!/usr/bin/env python3
"""Real Python VSOA server (PyPI vsoa==1.0.4) with the routes of the psvc interop reference
server, so the same client scenarios (py_interop.py, node_interop.js) run against either.

Usage: py_echo_server.py [--password PW] [--info TEXT] [--port N] [--lifetime S] [--verbose]

Listens on 127.0.0.1 (a free port unless --port; TCP and the UDP quick channel share it),
prints exactly one JSON line {"port":N} once listening, then serves until killed
(SIGTERM/SIGINT -> exit 0), until its parent process dies, or until --lifetime seconds have
passed (default 10; 0 = no limit). --info as py_server.py (default {"name":"py_echo_server"}).
On failure before listening: {"ok":false,"error":"..."} and exit 1 (2 = vsoa not importable).

RPC   /echo             reply status 0 with the request's param and data (JSON param
                        re-serialised compactly by the library; non-JSON param bytes verbatim)
RPC   /method           reply param {"method":"GET"|"SET"} (the request's method)
RPC   /status           param {"status":n} (0..255): empty reply with status n (bad param: 2)
RPC   /files/  (prefix) /files, /files/a, /files/a/b ...: reply param {"url":<requested url>}
RPC   /sleep            param {"ms":n} (0..10000): empty status-0 reply after n ms, from a timer
                        thread (other requests are served meanwhile)
RPC   /publish          param {"url":U,"param":P,"quick":bool[,"data_hex":H]}: publish U with
                        param = JSON text of P (quick: over UDP), then empty status-0 reply
RPC   /datagram         same param: DATAGRAM U to the caller only (quick: over UDP), then reply
RPC   /stream/echo      create a server stream, empty reply with its tunid; the stream echoes
                        every byte it receives until the client closes it
RPC   /stream/download  param {"size":n} (0..64 MiB): create a stream, reply with its tunid;
                        once connected send n bytes, byte i = i % 251, then close
DGRAM /dg/echo          sent back to the sender unchanged (url, param, data; quick if it came
                        over the quick channel)
No default "/" route: any other URL gets status 3 (INVALID_URL) from the library.

Library workaround: vsoa 1.0.4's prefix-route lookup (Server._cmdfunc) never matches
'/files/a' for a '/files/' handler and raises IndexError (killing the server loop) for the
URL '/files/'; this script overrides _cmdfunc with VSOA's documented matching (see NOTES.md).
"""
import json, sys, threading

from peerlib import listen, run_main, server_setup, serve_until_done

MAX_SLEEP_MS = 10000
MAX_DOWNLOAD = 64 * 1024 * 1024
STREAM_TIMEOUT = 5.0          # s a server stream waits for the client to connect
CHUNK = 64 * 1024


def json_bytes(v):
    """JSON text of v as bytes (bytes are sent verbatim by the packer; scalars would be dropped)."""
    return json.dumps(v, separators=(',', ':')).encode()


def param_bytes(param):
    """A received param (parsed JSON / raw bytes / None) ready to send back."""
    if param is None:
        return None
    if isinstance(param, (bytes, bytearray)):
        return bytes(param)
    return json_bytes(param)


PATTERN = bytes(range(251))


def pattern(n):
    return (PATTERN * (n // 251 + 1))[:n]


def main():
    a, vsoa, info, log = server_setup('py_echo_server')

    class Server(vsoa.Server):
        def _cmdfunc(self, url):
            # VSOA rules: exact handler first, then the longest '/p/' handler matching '/p' or
            # '/p/...', then the default '/' handler (none registered here).
            cmds, wccmds = self._Server__cmds, self._Server__wccmds
            if url in cmds:
                return cmds[url]
            best = None
            for cmd in wccmds:
                if cmd == '/':
                    continue
                if url == cmd[:-1] or url.startswith(cmd):
                    if best is None or len(cmd) > len(best):
                        best = cmd
            if best is not None:
                return wccmds[best]
            return wccmds.get('/', (None, None))

    server = Server(info, passwd=a.password)
    server.onclient = lambda cli, conn: log('client', cli.id, 'connected' if conn else 'disconnected')

    def param_dict(payload):
        return payload.param if isinstance(payload.param, dict) else {}

    @server.command('/echo')
    def echo(cli, req, payload):
        cli.reply(req.seqno, {'param': param_bytes(payload.param), 'data': payload.data})

    @server.command('/method')
    def method(cli, req, payload):
        cli.reply(req.seqno, {'param': {'method': 'SET' if req.method else 'GET'}})

    @server.command('/status')
    def status(cli, req, payload):
        n = param_dict(payload).get('status')
        if type(n) is not int or not 0 <= n <= 255:
            cli.reply(req.seqno, None, status=2)
        else:
            cli.reply(req.seqno, None, status=n)

    @server.command('/files/')
    def files(cli, req, payload):
        cli.reply(req.seqno, {'param': {'url': req.url}})

    @server.command('/sleep')
    def sleep(cli, req, payload):
        ms = param_dict(payload).get('ms', 0)
        if type(ms) not in (int, float) or not 0 <= ms <= MAX_SLEEP_MS:
            cli.reply(req.seqno, None, status=2)
            return
        t = threading.Timer(ms / 1000.0, lambda: cli.reply(req.seqno))
        t.daemon = True
        t.start()

    def message_args(payload):
        p = param_dict(payload)
        url = p.get('url')
        if type(url) is not str or not url.startswith('/'):
            return None
        out = {}
        if 'param' in p and p['param'] is not None:
            out['param'] = json_bytes(p['param'])
        if isinstance(p.get('data_hex'), str):
            try:
                out['data'] = bytes.fromhex(p['data_hex'])
            except ValueError:
                return None
        return url, out, bool(p.get('quick', False))

    def send_message(what, send, cli, req, payload):
        """/publish, /datagram: send(url, payload, quick) the message the param describes."""
        m = message_args(payload)
        if m is None:
            cli.reply(req.seqno, None, status=2)
            return
        sent = send(m[0], m[1], m[2])
        log(what, m, sent)
        cli.reply(req.seqno)

    @server.command('/publish')
    def publish(cli, req, payload):
        send_message('publish', server.publish, cli, req, payload)

    @server.command('/datagram')
    def datagram(cli, req, payload):
        send_message('datagram', cli.datagram, cli, req, payload)

    @server.command('/stream/echo')
    def stream_echo(cli, req, payload):
        def ondata(s, data):
            try:
                s.send(data)
            except Exception as e:  # noqa: BLE001
                log('stream echo send failed:', e)
        st = server.create_stream(lambda s, up: log('echo stream', s.tunid, 'up' if up else 'down'),
                                  ondata, STREAM_TIMEOUT)
        cli.reply(req.seqno, None, tunid=st.tunid)

    @server.command('/stream/download')
    def stream_download(cli, req, payload):
        n = param_dict(payload).get('size', 0)
        if type(n) is not int or not 0 <= n <= MAX_DOWNLOAD:
            cli.reply(req.seqno, None, status=2)
            return

        def sender(s):
            buf = memoryview(pattern(n))
            off = 0
            try:
                while off < n:     # bounded: each pass sends >= 1 byte or raises/breaks
                    k = s.send(buf[off:off + CHUNK])
                    if k <= 0:
                        break
                    off += k
            except Exception as e:  # noqa: BLE001
                log('download send failed at', off, e)
            log('download sent', off, 'of', n)
            s.close()

        def onlink(s, up):
            log('download stream', 'up' if up else 'down')
            if up:
                threading.Thread(target=sender, args=(s,), daemon=True).start()
        st = server.create_stream(onlink, None, STREAM_TIMEOUT)
        cli.reply(req.seqno, None, tunid=st.tunid)

    def ondata(cli, url, payload, quick):
        if url == '/dg/echo':
            ok = cli.datagram(url, {'param': param_bytes(payload.param), 'data': payload.data}, quick)
            log('dg echo', quick, ok)
    server.ondata = ondata

    err = listen(server, a, info, log)

    def died(e):
        log('server loop died:', repr(e))
        print('py_echo_server: server loop died: %r' % e, file=sys.stderr, flush=True)

    serve_until_done(a, err, died)


if __name__ == '__main__':
    run_main(main, 1)
