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
import json

from peerlib import listen, run_main, server_setup, serve_until_done

TICK = 0.05


def main():
    a, vsoa, info, log = server_setup('py_server')

    server = vsoa.Server(info, passwd=a.password)
    server.onclient = lambda cli, conn: log('client', cli.id, 'connected' if conn else 'disconnected')

    @server.command('/echo')
    def echo(cli, req, payload):
        param = payload.param
        # The packer drops JSON scalars (numbers, true/false); send those back as JSON text.
        if param is not None and not isinstance(param, (dict, list, str, bytes, bytearray)):
            param = json.dumps(param).encode()
        cli.reply(req.seqno, {'param': param, 'data': payload.data})

    err = listen(server, a, info, log)

    k = 0

    def tick():
        nonlocal k
        k += 1
        server.publish('/tick', {'param': {'n': k}})

    serve_until_done(a, err, lambda e: log('server loop died:', e), tick, TICK)


if __name__ == '__main__':
    run_main(main, 1)
