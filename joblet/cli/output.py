"""How the CLI shows things: aligned tables, ``key: value`` blocks, JSON, raw job output.

Every verb prints through here so the human and ``--json`` forms stay consistent, and so
tests capture output by swapping ``sys.stdout`` alone.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from google.protobuf.descriptor import Descriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from joblet.api import joblet_pb2 as pb


def to_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )


def print_json(value: Any) -> None:
    if isinstance(value, Message):
        value = to_dict(value)
    elif isinstance(value, list) and all(isinstance(v, Message) for v in value):
        value = [to_dict(v) for v in value]
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def print_json_line(message: Message) -> None:
    sys.stdout.write(json.dumps(to_dict(message), separators=(",", ":")) + "\n")
    sys.stdout.flush()


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [[str(c) for c in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        sys.stdout.write("  ".join([*padded, row[-1]]).rstrip() + "\n")


def _cell(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def print_pairs(pairs: Iterable[tuple[str, object]]) -> None:
    items = [(k, _cell(v)) for k, v in pairs]
    width = max((len(k) for k, _ in items), default=0) + 1
    for key, value in items:
        sys.stdout.write(f"{(key + ':').ljust(width)} {value}\n")


def message_pairs(message: Message, always: Sequence[str] = ()) -> list[tuple[str, object]]:
    """The fields of ``message`` that are set (plus ``always``), by field number, formatted."""
    present = {field.name for field, _ in message.ListFields()}
    pairs: list[tuple[str, object]] = []
    # The C (upb) descriptor has the pure-Python API; its stub types do not say so.
    descriptor = cast(Descriptor, message.DESCRIPTOR)
    for field in sorted(descriptor.fields, key=lambda f: f.number):
        if field.name not in present and field.name not in always:
            continue
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        value = getattr(message, field.name)
        pairs.append((field.name, format_value(value, is_map, field.is_repeated)))
    return pairs


def format_value(value: Any, is_map: bool, is_repeated: bool) -> str:
    if is_map:
        return ", ".join(f"{k}={value[k]}" for k in sorted(value))
    if is_repeated:
        return ", ".join(_scalar(v) for v in value)
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, pb.Timestamp):
        return format_timestamp(value)
    if isinstance(value, Message):
        return json.dumps(to_dict(value), separators=(",", ":"))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def format_timestamp(ts: pb.Timestamp) -> str:
    if ts.seconds == 0 and ts.nanos == 0:
        return "-"
    when = datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def human_bytes(count: int | float) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


def write_output(data: bytes) -> None:
    """Write a job's raw output bytes unchanged (text stdout as a fallback, e.g. in tests)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        sys.stdout.flush()
        buffer.write(data)
        buffer.flush()
    else:
        sys.stdout.write(data.decode("utf-8", "replace"))
        sys.stdout.flush()
