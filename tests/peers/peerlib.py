"""Helpers shared by the Python peer scripts (py_client.py, py_interop.py, py_server.py,
py_echo_server.py)."""
import argparse, json, os, signal, socket, sys, threading, time


def emit(obj, code=None):
    """Print one compact JSON line; exit with `code` when given."""
    sys.stdout.write(json.dumps(obj, separators=(',', ':')) + '\n')
    sys.stdout.flush()
    if code is not None:
        os._exit(code)


def import_vsoa():
    """Import vsoa, or re-exec under the venv install.sh puts in <repo>/target/peers."""
    try:
        import vsoa  # noqa: F401
        return vsoa
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    py = os.path.join(here, '..', '..', 'target', 'peers', 'venv', 'bin', 'python')
    if os.path.exists(py) and os.path.realpath(py) != os.path.realpath(sys.executable) \
            and not os.environ.get('PSVC_PEER_REEXEC'):
        os.environ['PSVC_PEER_REEXEC'] = '1'
        os.execv(py, [py] + sys.argv)
    emit({'ok': False, 'error': 'python vsoa not importable (run tests/peers/install.sh)'}, 2)


def run_main(main, code, extra=None):
    """Run main(); an uncaught error becomes {"ok":false,"error":"Type: text"[, ...extra()]}, exit `code`."""
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001
        emit(dict({'ok': False, 'error': '%s: %s' % (type(e).__name__, e)}, **(extra() if extra else {})), code)


# ---- clients ---------------------------------------------------------------------------------

def loopback_host(host):
    """host with localhost as 127.0.0.1; anything outside 127.0.0.0/8 is refused (exit 2)."""
    h = '127.0.0.1' if host == 'localhost' else host
    if not h.startswith('127.'):
        emit({'ok': False, 'error': 'refusing non-loopback host %s' % host}, 2)
    return h


def connect_error_names(client_class):
    """vsoa.Client connect result code -> its constant's name."""
    return {getattr(client_class, n): n for n in (
        'CONNECT_OK', 'CONNECT_ERROR', 'CONNECT_UNREACHABLE', 'SERVER_NOT_FOUND',
        'SERVER_NO_RESPONDING', 'INVALID_RESPONDING', 'INVALID_PASSWD', 'SSL_HS_FAILED')}


# ---- servers ---------------------------------------------------------------------------------

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


def server_args():
    """--password PW --info TEXT --port N --lifetime S --verbose (bad arguments: exit 2)."""
    ap = argparse.ArgumentParser()
    ap.add_argument('--password', default='')
    ap.add_argument('--info')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--lifetime', type=float, default=10.0)
    ap.add_argument('--verbose', action='store_true')
    try:
        return ap.parse_args()
    except SystemExit:
        emit({'ok': False, 'error': 'bad arguments'}, 2)


def server_info(text, name):
    """--info: None -> {"name":name}; JSON when it starts with '{' or '[' (bad JSON: exit 1); else the string."""
    if text is None:
        return {'name': name}
    if text.lstrip().startswith(('{', '[')):
        try:
            return json.loads(text)
        except ValueError as e:
            emit({'ok': False, 'error': 'bad --info JSON: %s' % e}, 1)
    return text


def server_setup(name):
    """A server's start: its arguments (server_args(), plus .start: time.monotonic() and
    .parent: the parent pid, both taken once vsoa is imported), vsoa, its info (default
    {"name":name}) and its log (stderr_log(name))."""
    a = server_args()
    vsoa = import_vsoa()
    a.start = time.monotonic()
    a.parent = os.getppid()
    return a, vsoa, server_info(a.info, name), stderr_log(name, a.verbose)


def stderr_log(prefix, verbose):
    """A print to stderr prefixed `prefix:`, silent unless verbose."""
    def log(*args):
        if verbose:
            print(prefix + ':', *args, file=sys.stderr, flush=True)
    return log


def listen(server, a, info, log):
    """Run server (a vsoa.Server) on 127.0.0.1 in a daemon thread: on --port, else on a free port
    (up to 5 tries); print {"port":N} (failure: exit 1). Returns the list the server loop's
    exception is appended to if it dies."""
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
        while not server._running and not err and time.monotonic() - a.start < 10:
            time.sleep(0.005)
        if server._running:
            port = p
            break
        if a.port or attempt == 4 or not err:
            emit({'ok': False, 'error': 'listen failed: %s' % (err[0] if err else 'timeout')}, 1)
    emit({'port': port})
    log('listening on 127.0.0.1:%d password=%r info=%r' % (port, a.password, info))
    return err


def serve_until_done(a, err, died, tick=None, period=0.05):
    """SIGTERM/SIGINT exit 0; then every `period` s: exit 1 (after died(exc)) if the server loop
    died, exit 0 if the parent process died or --lifetime passed, else call tick()."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    next_tick = time.monotonic()
    while True:
        next_tick += period
        time.sleep(max(0.0, next_tick - time.monotonic()))
        if err:
            died(err[0])
            os._exit(1)
        if os.getppid() != a.parent:
            os._exit(0)          # parent (the test) died: do not linger
        if a.lifetime > 0 and time.monotonic() - a.start >= a.lifetime:
            os._exit(0)
        if tick is not None:
            tick()
