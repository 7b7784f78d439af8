#!/usr/bin/env python3
"""Real Python VSOA client (PyPI vsoa==1.0.4) for psvc interop tests.

Usage: py_client.py HOST PORT [--password PW] [--call URL [--set] [--param JSON] [--data-hex HEX]]
                              [--subscribe URL [--count N]]

Prints exactly one JSON line on stdout:
  success: {"ok":true,"info":<server info as received>,"ping":true|false[,"call":{...}][,"messages":[...]]}
  failure: {"ok":false,"error":"<vsoa.Client error name>","code":<int>}   (exit 1)
  other:   {"ok":false,"error":"<text>"}                                   (exit 2; 3 = hard timeout)
Connects only to loopback. Hard overall timeout: 10 s.
Run with the venv made by install.sh: DIR/venv/bin/python tests/peers/py_client.py 127.0.0.1 PORT
"""
import argparse, json, os, signal, sys, threading

from peerlib import connect_error_names, emit, import_vsoa, loopback_host, run_main

HARD_TIMEOUT = 10
CONNECT_TIMEOUT = 5.0
OP_TIMEOUT = 2.0




def on_alarm(_sig, _frm):
    emit({'ok': False, 'error': 'hard timeout (%d s)' % HARD_TIMEOUT}, 3)


def jsonable(v):
    """param as the library delivered it: parsed JSON, or bytes when not JSON."""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode('utf-8', 'replace')
    return v




def main():
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(HARD_TIMEOUT)

    ap = argparse.ArgumentParser()
    ap.add_argument('host')
    ap.add_argument('port', type=int)
    ap.add_argument('--password', default='')
    ap.add_argument('--call')
    ap.add_argument('--set', action='store_true')
    ap.add_argument('--param')
    ap.add_argument('--data-hex')
    ap.add_argument('--subscribe')
    ap.add_argument('--count', type=int, default=1)
    try:
        a = ap.parse_args()
    except SystemExit:
        emit({'ok': False, 'error': 'bad arguments'}, 2)

    host = loopback_host(a.host)

    vsoa = import_vsoa()
    C = vsoa.Client
    names = connect_error_names(C)

    cli = C()
    msgs, msg_ev = [], threading.Event()

    def onmessage(_c, url, payload, quick):
        msgs.append({'url': url, 'param': jsonable(payload.param),
                     'data_hex': bytes(payload.data).hex() if payload.data else '', 'quick': quick})
        if len(msgs) >= a.count:
            msg_ev.set()
    cli.onmessage = onmessage

    rc = cli.connect('vsoa://%s:%d' % (host, a.port), a.password, timeout=CONNECT_TIMEOUT)
    if rc != C.CONNECT_OK:
        emit({'ok': False, 'error': names.get(rc, str(rc)), 'code': rc}, 1)
    # server info as received: parsed JSON (object / string / ...) or None when absent
    info = jsonable(cli._Client__info)

    threading.Thread(target=cli.run, daemon=True).start()

    ev, res = threading.Event(), []
    cli.ping(lambda _c, ok: (res.append(ok), ev.set()), OP_TIMEOUT)
    ev.wait(OP_TIMEOUT + 0.5)
    out = {'ok': True, 'info': info, 'ping': bool(res and res[0])}

    if a.call:
        payload = {}
        if a.param is not None:
            payload['param'] = a.param.encode()   # sent verbatim
        if a.data_hex:
            payload['data'] = bytes.fromhex(a.data_hex)
        h, p, code = cli.fetch(a.call, 1 if a.set else 0, payload or None, timeout=OP_TIMEOUT)
        if h is None:
            out['call'] = {'error': names.get(code, str(code)), 'code': code}
        else:
            out['call'] = {'status': h.status, 'param': jsonable(p.param),
                           'data_hex': bytes(p.data).hex() if p.data else ''}

    if a.subscribe:
        sev, sres = threading.Event(), []
        cli.subscribe(a.subscribe, lambda _c, ok: (sres.append(ok), sev.set()), OP_TIMEOUT)
        sev.wait(OP_TIMEOUT + 0.5)
        out['subscribed'] = bool(sres and sres[0])
        if out['subscribed']:
            msg_ev.wait(OP_TIMEOUT)
        out['messages'] = msgs[:a.count]

    try:
        cli.close()
    except Exception:
        pass
    emit(out, 0)


if __name__ == '__main__':
    run_main(main, 2)
