#!/usr/bin/env python3
"""Writes the malformed/truncated pcap corpus next to this script (committed; rerun to regenerate).
Each file's expected decode counters are asserted in MalformedCorpusTests.swift."""
import os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = 1764000000

def header(link=1, snap=65535, magic=0xa1b23c4d, endian='<'):
    return struct.pack(endian + 'IHHiIII', magic, 2, 4, 0, 0, snap, link)

def rec(data, i=0, orig=None, endian='<', frac=None):
    return struct.pack(endian + 'IIII', T0, frac if frac is not None else i * 1000, len(data), orig or len(data)) + data

def eth(payload, ethertype=0x0800):
    return b'\x02\x42\xac\x11\x00\x03' + b'\x02\x42\xac\x11\x00\x02' + struct.pack('>H', ethertype) + payload

def ipv4(payload, proto=6, ihl=5, total=None, version=4, frag=0):
    total = total if total is not None else ihl * 4 + len(payload)
    h = struct.pack('>BBHHHBBH4s4s', version << 4 | ihl, 0, total, 0x1234, frag, 64, proto, 0,
                    bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return h + b'\x00' * (ihl * 4 - 20) + payload

def tcp(sport=1234, dport=80, seq=1, ack=0, flags=0x02, off=5, payload=b''):
    return struct.pack('>HHIIBBHHH', sport, dport, seq, ack, off << 4, flags, 65535, 0, 0) + b'\x00' * max(0, off * 4 - 20) + payload

def ipv6(payload, nxt=6, plen=None):
    plen = plen if plen is not None else len(payload)
    return struct.pack('>IHBB', 0x60000000, plen, nxt, 64) + b'\xfd' + b'\x00' * 14 + b'\x01' + b'\xfd' + b'\x00' * 14 + b'\x02' + payload

def write(name, data):
    with open(os.path.join(HERE, name), 'wb') as f:
        f.write(data)

good = eth(ipv4(tcp()))

# 1. The last record is cut by the end of the file.
write('truncated-record.pcap', header() + rec(good, 0) + rec(good, 1)[:30])
# 2. The file header itself is cut.
write('truncated-file-header.pcap', header()[:10])
# 3. A record header claims 2 GiB: reading stops there.
write('corrupt-record-length.pcap', header() + rec(good, 0) + struct.pack('<IIII', T0, 0, 0x7fffffff, 0x7fffffff) + good + rec(good, 2))
# 4. Frames cut inside their headers (each counted as truncated).
short = [
    b'\x02\x42\xac',                                   # not even an Ethernet header
    eth(b''),                                          # Ethernet, no IPv4 header
    eth(ipv4(b'', ihl=15)[:30]),                       # IPv4 options cut
    eth(ipv4(tcp())[:30]),                             # TCP header cut
    eth(ipv6(tcp())[:34], 0x86dd),                     # IPv6 header cut
    b'\x02\x42\xac\x11\x00\x03\x02\x42\xac\x11\x00\x02\x81\x00\x00',  # VLAN tag cut
    eth(ipv4(b'\x08\x00', proto=1)),                   # ICMP header cut (ip length says 22)
]
write('truncated-frames.pcap', header() + b''.join(rec(f, i) for i, f in enumerate(short)))
# 5. Headers stating impossible things (each counted as malformed).
bad = [
    eth(ipv4(tcp(), version=5)),                       # IPv4 ethertype, version 5
    eth(ipv4(tcp(), ihl=3)),                           # IHL below 5
    eth(ipv4(tcp(), total=12)),                        # total length below the header length
    eth(ipv4(tcp(off=2))),                             # TCP data offset below 5
    eth(ipv4(tcp()[:12] + bytes([15 << 4]) + tcp()[13:]) + b'\x00' * 40),  # TCP header longer than the IP packet
    eth(ipv6(b'\x06\xff' + b'\x00' * 6 + tcp(), nxt=0), 0x86dd),  # hop-by-hop header longer than the packet
    eth(ipv4(b'\x00' * 4, proto=17)) + b'\x00' * 22,  # UDP header longer than the IP packet (Ethernet padding)
]
write('malformed-headers.pcap', header() + b''.join(rec(f, i) for i, f in enumerate(bad)))
# 6. Not IP, fragments, a good packet: counted by kind.
mixed = [
    eth(b'\x00\x01\x08\x00\x06\x04\x00\x01' + b'\x00' * 20, 0x0806),  # ARP
    eth(ipv4(b'\x00' * 16, proto=17, frag=0x0010)),                    # non-first fragment
    good,
]
write('mixed-kinds.pcap', header() + b''.join(rec(f, i) for i, f in enumerate(mixed)))
# 7. A link type the decoder does not know (DLT_USER0).
write('unknown-linktype.pcap', header(link=147) + rec(b'\x01\x02\x03\x04', 0))
# 8. Big-endian nanosecond file whose second record has a fraction >= 1e9.
write('bad-fraction-bigendian.pcap', header(endian='>') + rec(good, 0, endian='>') + rec(good, 0, endian='>', frac=1_500_000_000))
# 9. HTTP request cut by a 64-byte snap length: the handshake is measured, the HTTP stream is not followable.
req = b'GET /a-long-path-that-does-not-fit HTTP/1.1\r\nHost: x\r\n\r\n'
snap = []
snap.append(rec(eth(ipv4(tcp(seq=1, flags=0x02))), 0))
snap.append(rec(eth(ipv4(tcp(sport=80, dport=1234, seq=500, ack=2, flags=0x12))), 0, frac=30_000) if False else
            struct.pack('<IIII', T0, 30_000, 54, 54) + eth(struct.pack('>BBHHHBBH4s4s', 0x45, 0, 40, 0, 0, 64, 6, 0, bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1])) + tcp(sport=80, dport=1234, seq=500, ack=2, flags=0x12)))
snap.append(struct.pack('<IIII', T0, 45_000, 54, 54) + eth(ipv4(tcp(seq=2, ack=501, flags=0x10))))
full = eth(ipv4(tcp(seq=2, ack=501, flags=0x18, payload=req)))
snap.append(struct.pack('<IIII', T0, 60_000, 64, len(full)) + full[:64])
write('snaplen-cut-http.pcap', header(snap=64) + b''.join(snap))
print('corpus written to', HERE)
