"""Log segments: masking across chunk boundaries, rotation bounds, readers that follow."""

from __future__ import annotations

import os
import random
from pathlib import Path

from node_agent.state.logs import NOTICE, Masker, SegmentReader, SegmentWriter, list_segments


def test_masker_masks_whole_and_split_secrets() -> None:
    m = Masker(("hunter22", "s3cr3t-token"))
    out = m.feed(b"pw=hun") + m.feed(b"ter22 and s3cr3t-") + m.feed(b"token!\n") + m.flush()
    assert out == b"pw=*** and ***!\n"


def test_masker_random_chunking_never_leaks() -> None:
    secret = "correct-horse-battery"
    text = (b"x" * 37 + secret.encode() + b"y" * 11) * 50
    rng = random.Random(7)
    for _ in range(50):
        m = Masker((secret,))
        out = b""
        i = 0
        while i < len(text):
            n = rng.randint(1, 40)
            out += m.feed(text[i : i + n])
            i += n
        out += m.flush()
        assert secret.encode() not in out
        assert out == text.replace(secret.encode(), b"***")


def test_masker_without_secrets_is_identity() -> None:
    m = Masker(())
    assert m.feed(b"abc") == b"abc"
    assert m.flush() == b""


def test_masker_holds_back_only_a_possible_prefix() -> None:
    m = Masker(("abcdef",))
    assert m.feed(b"hello ab") == b"hello "
    assert m.feed(b"x") == b"abx"


def test_writer_rotates_and_bounds_total(tmp_path: Path) -> None:
    w = SegmentWriter(str(tmp_path), segment_bytes=4096, max_bytes=3 * 4096)
    for _ in range(40):
        w.write(b"z" * 1000)
    w.close()
    segs = list_segments(str(tmp_path))
    assert len(segs) <= 3
    total = sum(os.path.getsize(tmp_path / f"{i:06d}.log") for i in segs)
    assert total <= 3 * 4096


def test_reader_reads_everything_in_order(tmp_path: Path) -> None:
    w = SegmentWriter(str(tmp_path), segment_bytes=4096, max_bytes=1 << 30)
    payload = bytes(range(256)) * 100
    r = SegmentReader(str(tmp_path), chunk=1000)
    got = bytearray()
    for i in range(0, len(payload), 777):
        w.write(payload[i : i + 777])
        while data := r.read():
            got += data
    w.close()
    while data := r.read():
        got += data
    assert bytes(got) == payload


def test_reader_reports_rotated_away_output(tmp_path: Path) -> None:
    w = SegmentWriter(str(tmp_path), segment_bytes=4096, max_bytes=2 * 4096)
    for _ in range(20):
        w.write(b"a" * 1024)
    w.close()
    r = SegmentReader(str(tmp_path))
    first = r.read()
    assert first == NOTICE
    rest = b"".join(iter(r.read, b""))
    assert rest and set(rest) == {ord("a")}


def test_writer_continues_after_restart(tmp_path: Path) -> None:
    w = SegmentWriter(str(tmp_path), 4096, 1 << 20)
    w.write(b"one\n")
    w.close()
    w = SegmentWriter(str(tmp_path), 4096, 1 << 20)
    w.write(b"two\n")
    w.close()
    assert b"".join(SegmentReader(str(tmp_path))) == b"one\ntwo\n"
