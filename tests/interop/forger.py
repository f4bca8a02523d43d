"""A student's PC on the imaging VLAN: joins a room session's group, sniffs what the
appliance sends, and sends to the group for as long as it runs, at RATE datagrams a
second, a mix of every forgery it can make without the session's key:

* random junk of random length;
* authentic headers (captured) with junk payloads;
* captured data datagrams with one bit flipped in the header, or in the payload;
* captured beacons with one bit flipped, or with their state byte set to "ending" or
  "idle", or their rate or data counter changed;
* replays of captured beacons (old sequence numbers) and of data datagrams;
* datagrams of "another session": the session's number, another key.

Usage: forger.py SESSION GROUP PORT LOCAL_ADDRESS RATE
Prints one JSON line of what it sent, by kind, when it gets SIGTERM.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import struct
import sys
import time
from collections import Counter

sys.path.insert(0, ".")
from appliance.formats import roomwire

sid, group, port, local, rate = (
    int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]),
)  # fmt: skip
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
rx.bind((group, port))
rx.setsockopt(
    socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton(local)
)
rx.setblocking(False)
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(local))
tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
rng = random.Random(29)
other = roomwire.SessionKey(rng.randbytes(roomwire.KEY_SIZE))
beacons: list[bytes] = []  # captured, oldest first
data: list[bytes] = []
sent: Counter[str] = Counter()
nbytes = 0
stop = False


def _term(_sig: int, _frame: object) -> None:
    global stop
    stop = True


signal.signal(signal.SIGTERM, _term)


def sniff() -> None:
    for _ in range(200):
        try:
            d = rx.recv(2048)
        except BlockingIOError:
            return
        if d[:4] != roomwire.MAGIC or len(d) < 12:
            continue
        if d[5] == roomwire.KIND_BEACON:
            beacons.append(d)
            del beacons[:-50]
        elif len(data) < 500 or rng.random() < 0.01:
            data.append(d) if len(data) < 500 else data.__setitem__(rng.randrange(500), d)


def flip(d: bytes, lo: int, hi: int) -> bytes:
    b = bytearray(d)
    i = rng.randrange(lo, min(hi, len(b)))
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def forge() -> tuple[str, bytes]:
    kind = rng.randrange(10)
    if kind == 0 or not (data and beacons):
        return "junk", rng.randbytes(rng.randrange(0, 1500))
    if kind == 1:
        d = rng.choice(data)
        return "junk-payload", d[: roomwire.HEADER_SIZE] + rng.randbytes(len(d) - 28)
    if kind == 2:
        return "flipped-header", flip(rng.choice(data), 0, roomwire.HEADER_SIZE)
    if kind == 3:
        return "flipped-payload", flip(rng.choice(data), roomwire.HEADER_SIZE, 1468)
    if kind == 4:
        return "flipped-beacon", flip(beacons[-1], 0, len(beacons[-1]))
    if kind == 5:  # the newest beacon, its state set to "ending" or "idle", seq ahead
        b = bytearray(beacons[-1])
        b[12:16] = struct.pack("!I", (struct.unpack_from("!I", b, 12)[0] + 100) & 0xFFFFFFFF)
        b[12 + 30] = rng.choice([roomwire.ENDING, roomwire.IDLE])
        return "ending-beacon", bytes(b)
    if kind == 6:  # the data counter wound far ahead: "you caught nothing"
        b = bytearray(beacons[-1])
        b[24:32] = struct.pack("!Q", 10**12)
        return "counter-beacon", bytes(b)
    if kind == 7:
        return "replayed-beacon", beacons[0]
    if kind == 8:
        return "replayed-data", rng.choice(data)
    frame = rng.randbytes(rng.randrange(1, 20_000))
    chunk = rng.randrange(64)
    gram = next(roomwire.encode_pieces(other, sid, chunk, frame, seq=rng.randrange(2**31)))
    if rng.random() < 0.5:
        gram = roomwire.encode_beacon(other, sid, 2**31, 10**6, 0, 64, 0, roomwire.ENDING)
    return "other-session", gram


start = time.monotonic()
n = 0
while not stop:
    sniff()
    due = int((time.monotonic() - start) * rate)
    while n < due and not stop:
        kind, gram = forge()
        try:
            tx.sendto(gram, (group, port))
            sent[kind] += 1
            nbytes += len(gram)
        except OSError:
            sent["send-error"] += 1
        n += 1
    time.sleep(0.005)
took = round(time.monotonic() - start, 1)
report = {"sent": sum(sent.values()), "bytes": nbytes, "by_kind": dict(sent), "seconds": took,
          "captured": len(data)}  # fmt: skip
print(json.dumps(report), flush=True)
