#!/usr/bin/env python3
"""Interop scenario client on the real Python VSOA client (PyPI vsoa==1.0.4).

Usage: py_interop.py HOST PORT [--password PW] [--only NAME[,NAME...]] [--skip NAME[,NAME...]]
                               [--timeout S]

Runs the checks below against a server with the psvc interop reference routes (the psvc
reference server, py_echo_server.py or node_echo_server.js) and prints exactly one JSON line:
  {"ok":bool,"checks":{"<name>":{"ok":bool,...details},...}[,"skipped":[...]]}
ok = every check that ran passed. Skipped checks appear as {"ok":true,"skipped":true,"reason":..}.
Connect failure: {"ok":false,"error":"<vsoa.Client error name>","code":N,"checks":{}} (exit 1).
Exit codes: 0 all checks ok, 1 a check failed or connect failed, 2 usage/env error,
3 hard timeout (default 20 s; the line then carries "error" and the checks finished so far).
Every check is bounded (2 s per reply/message, 5 s per stream) and fails instead of hanging.
Connects only to loopback.

Checks: rpc_get rpc_set user_status prefix_route sleep_parallel subscribe_single subscribe_list
        publish_quick datagram_tcp datagram_quick client_datagram_tcp client_datagram_quick
        stream_echo stream_download
"""
import argparse, os, signal, sys, threading, time

from peerlib import connect_error_names, emit, import_vsoa, loopback_host, run_main

CHECKS = ['rpc_get', 'rpc_set', 'user_status', 'prefix_route', 'sleep_parallel',
          'subscribe_single', 'subscribe_list', 'publish_quick', 'datagram_tcp',
          'datagram_quick', 'client_datagram_tcp', 'client_datagram_quick',
          'stream_echo', 'stream_download']

# Reasons printed for --skip NAME (documented peer-library limitations, see NOTES.md).
SKIP_REASONS = {}

HARD_TIMEOUT = 20
CONNECT_TIMEOUT = 5.0
OP = 2.0            # one reply / one message
STREAM_T = 5.0      # one stream transfer
ECHO_SIZE = 100 * 1024
DOWNLOAD_SIZE = 1024 * 1024

results = {}
state = {'running': None}


def jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode('utf-8', 'replace')
    return v


def hexs(b, limit=64):
    if not b:
        return ''
    b = bytes(b)
    return b[:limit].hex() + ('...' if len(b) > limit else '')


def pattern(n):
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def first_mismatch(got, want):
    n = min(len(got), len(want))
    if got[:n] == want[:n]:
        return None if len(got) == len(want) else n
    lo, hi = 0, n            # binary search on prefix equality: bounded by log2(n) steps
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if got[:mid] == want[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class Inbox:
    """Thread-safe list of received publishes / datagrams."""

    def __init__(self):
        self.items = []
        self.cv = threading.Condition()

    def add(self, url, payload, quick):
        with self.cv:
            self.items.append({'url': url, 'param': jsonable(payload.param),
                               'data_hex': bytes(payload.data).hex() if payload.data else '',
                               'quick': bool(quick)})
            self.cv.notify_all()

    def mark(self):
        with self.cv:
            return len(self.items)

    def wait(self, since, pred, timeout):
        """Items after index `since` once pred(items) is true or timeout expires."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while not pred(self.items[since:]):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cv.wait(left)
            return list(self.items[since:])


def main():
    signal.signal(signal.SIGALRM, lambda *_: emit(
        {'ok': False, 'error': 'hard timeout (%d s) during %s' % (HARD_TIMEOUT, state['running']),
         'checks': results}, 3))

    ap = argparse.ArgumentParser()
    ap.add_argument('host')
    ap.add_argument('port', type=int)
    ap.add_argument('--password', default='')
    ap.add_argument('--only')
    ap.add_argument('--skip')
    ap.add_argument('--timeout', type=int, default=HARD_TIMEOUT)
    try:
        a = ap.parse_args()
    except SystemExit:
        emit({'ok': False, 'error': 'bad arguments'}, 2)
    globals()['HARD_TIMEOUT'] = a.timeout
    signal.alarm(a.timeout)

    def names(s):
        out = [n for n in (s or '').split(',') if n]
        bad = [n for n in out if n not in CHECKS]
        if bad:
            emit({'ok': False, 'error': 'unknown check(s): %s' % ','.join(bad)}, 2)
        return out
    only, skip = names(a.only), names(a.skip)
    todo = [n for n in CHECKS if not only or n in only]

    host = loopback_host(a.host)

    vsoa = import_vsoa()
    C = vsoa.Client
    errnames = connect_error_names(C)
    TUNNEL = vsoa.parser.VSOA_FLAG_TUNNEL

    cli = C()
    msgs, dgrams = Inbox(), Inbox()
    cli.onmessage = lambda _c, url, payload, quick: msgs.add(url, payload, quick)
    cli.ondata = lambda _c, url, payload, quick: dgrams.add(url, payload, quick)

    rc = cli.connect('vsoa://%s:%d' % (host, a.port), a.password, timeout=CONNECT_TIMEOUT)
    if rc != C.CONNECT_OK:
        emit({'ok': False, 'error': errnames.get(rc, str(rc)), 'code': rc, 'checks': {}}, 1)
    threading.Thread(target=cli.run, daemon=True).start()

    # ---- helpers -------------------------------------------------------------------------
    def rpc(url, set_=False, param=None, data=None, timeout=OP):
        payload = {}
        if param is not None:
            payload['param'] = param
        if data is not None:
            payload['data'] = data
        h, p, code = cli.fetch(url, 1 if set_ else 0, payload or None, timeout=timeout)
        if h is None:
            return {'error': errnames.get(code, str(code))}
        r = {'status': h.status, 'param': jsonable(p.param),
             'data_hex': bytes(p.data).hex() if p.data else ''}
        if h.flags & TUNNEL or h.tunid:
            r['tunid'] = h.tunid
            r['tunnel_flag'] = bool(h.flags & TUNNEL)
        return r

    def subscribe(url):
        ev, res = threading.Event(), []
        sent = cli.subscribe(url, lambda _c, ok: (res.append(ok), ev.set()), OP)
        ev.wait(OP + 0.5)
        return bool(sent and res and res[0])

    def publish_set(sub, pubs, want):
        """Subscribe `sub` (str or list), publish each url in pubs via /publish, expect `want`."""
        d = {'subscribed': subscribe(sub)}
        if not d['subscribed']:
            d['ok'] = False
            return d
        since = msgs.mark()
        d['publish_status'] = {}
        sent = {}
        for i, u in enumerate(pubs):
            sent[u] = {'i': i, 'u': u}
            r = rpc('/publish', param={'url': u, 'param': sent[u], 'quick': False})
            d['publish_status'][u] = r.get('status', r.get('error'))
        # a failed /publish fails the check anyway: then only collect what came, do not wait
        all_ok = all(v == 0 for v in d['publish_status'].values())
        msgs.wait(since, lambda it: set(want) <= {m['url'] for m in it}, OP if all_ok else 0)
        time.sleep(0.2)                      # grace period for messages that must not come
        got = msgs.wait(since, lambda it: True, 0)
        d['received'] = [m['url'] for m in got]
        d['expected'] = sorted(want)
        bad_param = [m for m in got if m['url'] in sent and m['param'] != sent[m['url']]]
        if bad_param:
            d['bad_param'] = bad_param
        d['ok'] = (all(s == 0 for s in d['publish_status'].values())
                   and sorted(d['received']) == sorted(want) and not bad_param
                   and not any(m['quick'] for m in got))
        return d

    # ---- checks --------------------------------------------------------------------------
    def rpc_get():
        r = rpc('/echo', param={'a': 1}, data=b'\x01\x02\x03')
        return {'ok': r.get('status') == 0 and r.get('param') == {'a': 1}
                and r.get('data_hex') == '010203', 'reply': r}

    def rpc_set():
        s = rpc('/method', set_=True)
        g = rpc('/method', set_=False)
        return {'ok': s.get('status') == 0 and s.get('param') == {'method': 'SET'}
                and g.get('status') == 0 and g.get('param') == {'method': 'GET'},
                'set': s, 'get': g}

    def user_status():
        r200 = rpc('/status', param={'status': 200})
        r2 = rpc('/status', param={'status': 2})
        return {'ok': r200.get('status') == 200 and r2.get('status') == 2,
                'status_200': r200, 'status_2': r2}

    def prefix_route():
        d = {}
        ok = True
        for u in ('/files', '/files/a', '/files/a/b'):
            d[u] = rpc(u)
            ok = ok and d[u].get('status') == 0 and d[u].get('param') == {'url': u}
        for u in ('/nope', '/filesx'):
            d[u] = rpc(u)
            ok = ok and d[u].get('status') == 3
        d['ok'] = ok
        return d

    def sleep_parallel():
        t0 = time.monotonic()
        order, cv = [], threading.Condition()

        def cb(name):
            def f(_c, h, _p):
                with cv:
                    order.append({'rpc': name, 'status': None if h is None else h.status,
                                  'ms': round((time.monotonic() - t0) * 1000)})
                    cv.notify_all()
            return f
        s1 = cli.call('/sleep', 0, {'param': {'ms': 300}}, cb('sleep'), 3.0)
        s2 = cli.call('/echo', 0, {'param': {'e': 1}}, cb('echo'), 3.0)
        deadline = t0 + 3.5
        with cv:
            while len(order) < 2 and time.monotonic() < deadline:
                cv.wait(max(0.0, deadline - time.monotonic()))
            got = list(order)
        names_ = [o['rpc'] for o in got]
        return {'ok': bool(s1 and s2) and names_ == ['echo', 'sleep']
                and all(o['status'] == 0 for o in got)
                and got[1]['ms'] >= 250, 'replies': got}

    def subscribe_single():
        return publish_set('/a/', ['/a/b', '/ab', '/a'], ['/a/b', '/a'])

    def subscribe_list():
        return publish_set(['/x', '/y/'], ['/x', '/y/z', '/xx'], ['/x', '/y/z'])

    def publish_quick():
        d = {'subscribed': subscribe('/q')}
        if not d['subscribed']:
            d['ok'] = False
            return d
        since = msgs.mark()
        r = rpc('/publish', param={'url': '/q', 'param': {'q': 1}, 'quick': True})
        d['publish_status'] = r.get('status', r.get('error'))
        got = msgs.wait(since, lambda it: any(m['url'] == '/q' for m in it),
                        OP if r.get('status') == 0 else 0.2)
        d['received'] = got
        q = [m for m in got if m['url'] == '/q']
        d['ok'] = r.get('status') == 0 and len(q) == 1 and q[0]['quick'] is True \
            and q[0]['param'] == {'q': 1}
        return d

    def server_datagram(quick):
        since = dgrams.mark()
        r = rpc('/datagram', param={'url': '/d', 'param': {'k': 1}, 'quick': quick})
        got = dgrams.wait(since, lambda it: any(m['url'] == '/d' for m in it),
                          OP if r.get('status') == 0 else 0.2)
        dd = [m for m in got if m['url'] == '/d']
        return {'ok': r.get('status') == 0 and len(dd) == 1 and dd[0]['quick'] is quick
                and dd[0]['param'] == {'k': 1},
                'reply_status': r.get('status', r.get('error')), 'received': got}

    def client_datagram(quick):
        since = dgrams.mark()
        data = b'\x07\x00\xff\x10'
        sent = cli.datagram('/dg/echo', {'param': {'n': 7}, 'data': data}, quick)
        got = dgrams.wait(since, lambda it: any(m['url'] == '/dg/echo' for m in it), OP)
        dd = [m for m in got if m['url'] == '/dg/echo']
        return {'ok': bool(sent) and len(dd) == 1 and dd[0]['quick'] is quick
                and dd[0]['param'] == {'n': 7} and dd[0]['data_hex'] == data.hex(),
                'sent': bool(sent), 'received': got}

    def open_stream(url, param=None):
        """RPC url, then connect a client stream to the tunid. Returns (details, stream, box)."""
        d = {'reply': rpc(url, param=param)}
        tunid = d['reply'].get('tunid')
        if d['reply'].get('status') != 0 or not tunid:
            d['error'] = 'no tunid in reply'
            return d, None, None
        box = {'buf': bytearray(), 'up': False, 'closed': False, 'cv': threading.Condition()}

        def onlink(_s, up):
            with box['cv']:
                box['up' if up else 'closed'] = True
                box['cv'].notify_all()

        def ondata(_s, data):
            with box['cv']:
                box['buf'].extend(data)
                box['cv'].notify_all()
        try:
            st = cli.create_stream(tunid, onlink, ondata, STREAM_T)
        except Exception as e:  # noqa: BLE001
            d['error'] = 'create_stream: %s' % e
            return d, None, None
        return d, st, box

    def wait_box(box, pred, deadline):
        with box['cv']:
            while not pred() and time.monotonic() < deadline:
                box['cv'].wait(max(0.0, deadline - time.monotonic()))
            return pred()

    def stream_echo():
        d, st, box = open_stream('/stream/echo')
        if st is None:
            d['ok'] = False
            return d
        deadline = time.monotonic() + STREAM_T
        d['connected'] = wait_box(box, lambda: box['up'] or box['closed'], deadline) and box['up']
        if not d['connected']:
            d['ok'] = False
            return d
        payload = os.urandom(ECHO_SIZE)
        sent = []

        def sender():
            try:
                sent.append(st.send(payload))
            except Exception as e:  # noqa: BLE001
                sent.append('error: %s' % e)
        threading.Thread(target=sender, daemon=True).start()
        wait_box(box, lambda: len(box['buf']) >= ECHO_SIZE or box['closed'], deadline)
        got = bytes(box['buf'])
        d.update({'sent': sent[0] if sent else None, 'received': len(got),
                  'closed_early': box['closed']})
        mm = first_mismatch(got, payload)
        if mm is not None:
            d['first_mismatch'] = mm
        d['ok'] = len(got) == ECHO_SIZE and mm is None
        st.close()
        return d

    def stream_download():
        d, st, box = open_stream('/stream/download', {'size': DOWNLOAD_SIZE})
        if st is None:
            d['ok'] = False
            return d
        deadline = time.monotonic() + STREAM_T
        wait_box(box, lambda: box['closed'], deadline)
        got = bytes(box['buf'])
        d.update({'connected': box['up'], 'received': len(got), 'server_closed': box['closed']})
        mm = first_mismatch(got, pattern(DOWNLOAD_SIZE))
        if mm is not None:
            d['first_mismatch'] = mm
            d['got_at_mismatch'] = hexs(got[mm:mm + 8])
        d['ok'] = box['closed'] and len(got) == DOWNLOAD_SIZE and mm is None
        if not box['closed']:
            st.close()
        return d

    fns = {'rpc_get': rpc_get, 'rpc_set': rpc_set, 'user_status': user_status,
           'prefix_route': prefix_route, 'sleep_parallel': sleep_parallel,
           'subscribe_single': subscribe_single, 'subscribe_list': subscribe_list,
           'publish_quick': publish_quick,
           'datagram_tcp': lambda: server_datagram(False),
           'datagram_quick': lambda: server_datagram(True),
           'client_datagram_tcp': lambda: client_datagram(False),
           'client_datagram_quick': lambda: client_datagram(True),
           'stream_echo': stream_echo, 'stream_download': stream_download}

    skipped = []
    for name in todo:
        if name in skip:
            results[name] = {'ok': True, 'skipped': True,
                             'reason': SKIP_REASONS.get(name, 'skipped by --skip')}
            skipped.append(name)
            continue
        state['running'] = name
        t = time.monotonic()
        try:
            r = fns[name]()
        except Exception as e:  # noqa: BLE001
            r = {'ok': False, 'error': '%s: %s' % (type(e).__name__, e)}
        r['ms'] = round((time.monotonic() - t) * 1000)
        results[name] = r
    state['running'] = None

    out = {'ok': all(r['ok'] for r in results.values()), 'checks': results}
    if skipped:
        out['skipped'] = skipped
    emit(out, 0 if out['ok'] else 1)


if __name__ == '__main__':
    run_main(main, 2, lambda: {'checks': results})
