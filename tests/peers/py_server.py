#!/usr/bin/env python3
"""Real Python VSOA server (PyPI vsoa==1.0.4) for psvc interop tests.

Usage: py_server.py [--password PW] [--info TEXT] [--port N] [--lifetime S]

Listens on 127.0.0.1 (a free port unless --port; TCP and the UDP quick channel share it),
prints exactly one JSON line {"port":N} once listening, then serves until killed
(SIGTERM/SIGINT -> exit 0), until its parent process dies, or until --lifetime seconds
have passed (default 10, the hard timeout; 0 = no limit).
  --info TEXT  server info; parsed as JSON when it starts with '{' or '[' (default
               {"name":"py_server"}), otherwise sent as a JSON string.
RPC  /echo   replies status 0 with the request's param and data (param re-serialised by
             the library: compact JSON, so not byte-exact; non-JSON param bytes are verbatim).
PUB  /tick   {"n":k}, k = 1, 2, 3 ... every 50 ms, to subscribed clients.
On failure before listening: {"ok":false,"error":"..."} and exit 1 (2 = vsoa not importable).
"""
import argparse, json, os, signal, socket, sys, threading, time

from peerlib import emit, import_vsoa

TICK = 0.05






def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 (the server binds both to it)."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(('127.0.0.1', 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(('127.0.0.1', port))
        except OSError:
            continue
        finally:
            t.close()
            u.close()
        return port
    raise OSError('no free port')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--password', default='')
    ap.add_argument('--info')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--lifetime', type=float, default=10.0)
    ap.add_argument('--verbose', action='store_true')
    try:
        a = ap.parse_args()
    except SystemExit:
        emit({'ok': False, 'error': 'bad arguments'}, 2)

    vsoa = import_vsoa()
    start = time.monotonic()
    parent = os.getppid()

    if a.info is None:
        info = {'name': 'py_server'}
    elif a.info.lstrip().startswith(('{', '[')):
        try:
            info = json.loads(a.info)
        except ValueError as e:
            emit({'ok': False, 'error': 'bad --info JSON: %s' % e}, 1)
    else:
        info = a.info

    def log(*args):
        if a.verbose:
            print('py_server:', *args, file=sys.stderr, flush=True)

    server = vsoa.Server(info, passwd=a.password)
    server.onclient = lambda cli, conn: log('client', cli.id, 'connected' if conn else 'disconnected')

    @server.command('/echo')
    def echo(cli, req, payload):
        param = payload.param
        # The packer drops JSON scalars (numbers, true/false); send those back as JSON text.
        if param is not None and not isinstance(param, (dict, list, str, bytes, bytearray)):
            param = json.dumps(param).encode()
        cli.reply(req.seqno, {'param': param, 'data': payload.data})

    err = []

    def run(port):
        try:
            server.run('127.0.0.1', port)
        except BaseException as e:  # noqa: BLE001
            err.append(e)

    port = a.port
    for attempt in range(5):
        p = port or free_port()
        err.clear()
        th = threading.Thread(target=run, args=(p,), daemon=True)
        th.start()
        while not server._running and not err and time.monotonic() - start < 10:
            time.sleep(0.005)
        if server._running:
            port = p
            break
        if a.port or attempt == 4 or not err:
            emit({'ok': False, 'error': 'listen failed: %s' % (err[0] if err else 'timeout')}, 1)
    emit({'port': port})
    log('listening on 127.0.0.1:%d password=%r info=%r' % (port, a.password, info))

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))

    k = 0
    next_tick = time.monotonic()
    while True:
        next_tick += TICK
        time.sleep(max(0.0, next_tick - time.monotonic()))
        if err:
            log('server loop died:', err[0])
            os._exit(1)
        if os.getppid() != parent:
            os._exit(0)          # parent (the test) died: do not linger
        if a.lifetime > 0 and time.monotonic() - start >= a.lifetime:
            os._exit(0)
        k += 1
        server.publish('/tick', {'param': {'n': k}})


if __name__ == '__main__':
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001
        emit({'ok': False, 'error': '%s: %s' % (type(e).__name__, e)}, 1)
