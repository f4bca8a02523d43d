"""The seat's receive path on one core, with the datagrams' MAC and without it.

Feeds a session's authentic datagrams (frames of random bytes, as stored chunks are
incompressible) to the seat's state (:class:`bootimage.client.roomseat.Listener`:
the tag check, the header, the assembly into frames) and times it in CPU seconds of
this one thread.  The baseline is the same path with a key whose check is free: the
difference is what the MAC costs.  The appliance's side, tagging, is timed the same
way (``encode_pieces`` with the key, against the bare header and slice).

    python bench/seat_mac_bench.py [--mib 256] [--runs 5]

Prints Mbit/s of datagrams one core takes in (goal >= 940 with the MAC), the µs per
datagram, and the ratio.  Socket reads are not in it: with UDP_GRO they cost ~0.02
CPU-s per second at 940 Mbit/s (LAB-NOTES), and decompression and hashing of the
chunks come after (the unshaped row of bench/room_bench.py has the whole seat).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import median

from appliance.formats import roomwire
from bootimage.client.roomseat import Chunks, Listener, Placement, Stats

CHUNK = 4 * 1024 * 1024 + 1024  # a stored 4 MiB chunk of random data: a little larger


class FreeKey(roomwire.SessionKey):
    """A key whose tag is 16 zero bytes and whose check always passes: the baseline."""

    def tag(self, body: bytes | bytearray | memoryview) -> bytes:
        return bytes(roomwire.TAG_SIZE)

    def verify(self, datagram: memoryview) -> bool:
        return True


def datagrams(key: roomwire.SessionKey, frames: list[bytes]) -> tuple[list[bytes], float]:
    """Every datagram of ``frames`` and the CPU seconds making them took."""
    out: list[bytes] = []
    t = time.thread_time()
    seq = 0
    for k, frame in enumerate(frames):
        grams = list(roomwire.encode_pieces(key, 7, k, frame, seq=seq))
        seq += len(grams)
        out += grams
    return out, time.thread_time() - t


def receive(key: roomwire.SessionKey, grams: list[bytes], chunks: int) -> float:
    """CPU seconds the seat's state takes for ``grams``; every frame must complete."""
    c = Chunks({k: [Placement(0, k * CHUNK, CHUNK)] for k in range(chunks)}, 64)
    rx = Listener(7, key, c, Stats())
    views = [memoryview(g) for g in grams]
    done = 0
    t = time.thread_time()
    for v in views:
        done += len(rx.feed(v, "10.0.0.1", 0.0))
    took = time.thread_time() - t
    if done != chunks:
        raise SystemExit(f"only {done} of {chunks} frames completed")
    return took


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    rng = random.Random(1)
    frames = [rng.randbytes(CHUNK) for _ in range(max(1, args.mib * 2**20 // CHUNK))]
    real = roomwire.SessionKey(rng.randbytes(roomwire.KEY_SIZE))
    free = FreeKey(bytes(roomwire.KEY_SIZE))
    tagged, _ = datagrams(real, frames)
    bare, _ = datagrams(free, frames)
    wire = sum(len(g) for g in tagged)
    n = len(tagged)
    rx_mac = median([receive(real, tagged, len(frames)) for _ in range(args.runs)])
    rx_free = median([receive(free, bare, len(frames)) for _ in range(args.runs)])
    tx_mac = median([datagrams(real, frames)[1] for _ in range(args.runs)])
    tx_free = median([datagrams(free, frames)[1] for _ in range(args.runs)])
    print(f"{n:,} datagrams ({wire / 2**20:,.0f} MiB), medians of {args.runs}, one core:")
    for name, mac, base in (
        ("seat (receive)", rx_mac, rx_free),
        ("appliance (tag)", tx_mac, tx_free),
    ):
        print(f"  {name:<16} with the MAC {wire * 8 / mac / 1e6:6.0f} Mbit/s"
              f" ({mac / n * 1e6:.2f} µs/datagram), without {wire * 8 / base / 1e6:6.0f} Mbit/s"
              f" ({base / n * 1e6:.2f}); the MAC costs {(mac - base) / n * 1e6:.2f} µs a"
              f" datagram, {mac / base:.2f} x; at 940 Mbit/s the path takes"
              f" {940e6 / 8 / (wire / n) * mac / n:.2f} of a core")  # fmt: skip
    print("  (goal: the seat's receive path >= 940 Mbit/s with the MAC)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
