"""Helpers shared by the Python peer scripts (py_client.py, py_server.py)."""
import json, os, sys


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
