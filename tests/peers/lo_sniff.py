#!/usr/bin/env python3
"""Loopback sniffer used to capture the VSOA wire bytes quoted in NOTES.md (dev tool, not
used by the tests). Needs CAP_NET_RAW (AF_PACKET socket on 'lo'); sees only 127.0.0.0/8.

Usage: lo_sniff.py PORT[,PORT...] [--seconds S] [--max-data N]

Prints one line per VSOA packet carried by TCP or UDP traffic to/from one of the PORTs on
the loopback interface, for S seconds (default 5, at most 60):
  <t_ms> TCP|UDP <src_port>-><dst_port> <hex of the packet>   # decoded header fields
TCP payloads are reassembled per direction (in arrival order; loopback does not reorder) and
split at VSOA packet boundaries; data longer than N bytes (default 32) is cut ('...').
Non-VSOA bytes (e.g. stream tunnels on other ports are not captured at all) print as raw.
"""
import argparse, socket, struct, sys, time

TYPES = {0: 'SERVINFO', 1: 'RPC', 2: 'SUBSCRIBE', 3: 'UNSUBSCRIBE', 4: 'PUBLISH', 5: 'DATAGRAM',
         6: 'QOSSETUP', 0xfe: 'NOOP', 0xff: 'PINGECHO'}


def decode(pkt):
    mv, typ, fl, st, seq, tun, ul, pl, dl = struct.unpack_from('>BBBBIHHII', pkt, 0)
    flags = [n for b, n in ((1, 'REPLY'), (2, 'TUNNEL'), (4, 'SET')) if fl & b]
    return ('%s flags=0x%02x(%s pad=%d) status=%d seqno=0x%x tunid=%d url=%d param=%d data=%d'
            % (TYPES.get(typ, hex(typ)), fl, '|'.join(flags) or '-', fl >> 6, st, seq, tun,
               ul, pl, dl))


def split(buf):
    """Complete VSOA packets at the start of buf -> (packets, rest)."""
    out = []
    for _ in range(100000):
        if len(buf) < 20 or buf[0] != 0x29:
            break
        ul, pl, dl = struct.unpack_from('>HII', buf, 10)
        n = 20 + ul + pl + dl + (buf[2] >> 6)
        if len(buf) < n:
            break
        out.append(bytes(buf[:n]))
        buf = buf[n:]
    return out, buf


def show(t0, proto, sp, dp, pkt, maxd):
    ul, pl, dl = struct.unpack_from('>HII', pkt, 10)
    keep = 20 + ul + pl + min(dl, maxd)
    h = pkt[:keep].hex(' ')
    if keep < len(pkt) - (pkt[2] >> 6):
        h += ' ...'
    elif pkt[2] >> 6:
        h = pkt.hex(' ')
    print('%6d %s %d->%d %s   # %s' % ((time.monotonic() - t0) * 1000, proto, sp, dp, h,
                                         decode(pkt)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('ports')
    ap.add_argument('--seconds', type=float, default=5.0)
    ap.add_argument('--max-data', type=int, default=32)
    a = ap.parse_args()
    ports = {int(p) for p in a.ports.split(',')}
    secs = min(max(a.seconds, 0.1), 60.0)

    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.bind(('lo', 0))
    s.settimeout(0.1)
    t0 = time.monotonic()
    flows = {}
    print('listening', flush=True)
    while time.monotonic() - t0 < secs:
        try:
            frame, addr = s.recvfrom(70000)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:      # lo may show a frame twice: keep the incoming copy
            continue
        ip = frame[14:]
        if len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        ihl = (ip[0] & 15) * 4
        proto = ip[9]
        tot = struct.unpack_from('>H', ip, 2)[0]
        l4 = ip[ihl:tot]
        if proto == 6 and len(l4) >= 20:
            sp, dp = struct.unpack_from('>HH', l4, 0)
            off = (l4[12] >> 4) * 4
            payload = l4[off:]
            if not payload or not ({sp, dp} & ports):
                continue
            buf = flows.get((sp, dp), b'') + payload
            pkts, rest = split(buf)
            for p in pkts:
                show(t0, 'TCP', sp, dp, p, a.max_data)
            if rest and rest[0] != 0x29:
                print('%6d TCP %d->%d raw %s' % ((time.monotonic() - t0) * 1000, sp, dp,
                                                 rest[:64].hex(' ')), flush=True)
                rest = b''
            flows[(sp, dp)] = rest
        elif proto == 17 and len(l4) >= 8:
            sp, dp = struct.unpack_from('>HH', l4, 0)
            if not ({sp, dp} & ports):
                continue
            payload = l4[8:]
            if len(payload) >= 20 and payload[0] == 0x29:
                show(t0, 'UDP', sp, dp, payload, a.max_data)
            else:
                print('%6d UDP %d->%d raw %s' % ((time.monotonic() - t0) * 1000, sp, dp,
                                                 payload[:64].hex(' ')), flush=True)


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        pass
    except PermissionError as e:
        print('lo_sniff: needs CAP_NET_RAW: %s' % e, file=sys.stderr)
        sys.exit(2)
