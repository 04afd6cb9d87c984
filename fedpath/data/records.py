"""Source files as chunks of text records, each with the source line it starts on.

Why not ``pandas.read_csv``: it cannot tell which source line a row came from, and it either drops
or fails on a row with the wrong number of fields. Here each chunk's bytes are scanned with numpy
(line ends, quotes, delimiters); records that cannot be split are quarantined with their line
number; the well-formed unquoted records, nearly all of a log, go to pyarrow's CSV parser with
quoting turned off, so parser and framing cannot disagree. Quoted records are framed by quote
parity (a record goes on while a quote is open) and split one by one with the ``csv`` module.

A quoted field may span at most ``MAX_RECORD_LINES`` lines. Event logs hold ids, times and short
labels, so a quote still open that many lines later is a stray one (``5" screen``), not a long
text; without the limit it would swallow every following line into one rejected record. Its
line is quarantined alone ("unterminated quote from line N") and framing resumes on the next
line, so every other line is still read. Two stray quotes fewer than that many lines apart still
frame the lines between them as one record (rejected whole, all of them in its ``raw``).

A gzip file (told by its magic bytes, whatever its name) is decompressed as it is read, so it
streams like a plain one and memory stays bounded by the chunk, not the file.

Text is UTF-8; undecodable bytes become U+FFFD rather than stopping the load (a damaged id then
fails validation, or passes as a different string, as it would in any text tool).
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fedpath.data.closing import Closing
from fedpath.data.formats import LogFormat
from fedpath.data.quarantine import Quarantine
from fedpath.errors import DataFormatError

_NL, _CR, _QUOTE = ord("\n"), ord("\r"), ord('"')
_BOM = b"\xef\xbb\xbf"
_PARQUET_MAGIC = b"PAR1"
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)  # a damaged or cut compressed file
_T = TypeVar("_T")
_BYTES_PER_LINE_GUESS = 128
MAX_RECORD_LINES = 20  # lines one record (a quoted field with line breaks) may span


@dataclass(frozen=True)
class RawChunk:
    """Records of one chunk split into fields, all still text (``fields`` has the source names)."""

    file: Path
    lines: np.ndarray  # [n] int64: 1-based source line where each record starts
    fields: pa.Table  # [n, source columns] string, one chunk
    raw: pa.Array | None  # [n] the records as written; None: describe them from ``fields``

    def raw_text(self, positions: np.ndarray) -> list[str]:
        """The records at ``positions`` as a reader of the quarantine should see them."""
        taken = pa.array(positions, type=pa.int64())
        if self.raw is None:
            return [
                json.dumps(row, ensure_ascii=False) for row in self.fields.take(taken).to_pylist()
            ]
        return _strip_line_end(self.raw.take(taken)).to_pylist()


def is_parquet(path: Path) -> bool:
    """Whether ``path`` is framed as Parquet (magic bytes at both ends), whatever its name."""
    with path.open("rb") as stream:
        head = stream.read(len(_PARQUET_MAGIC))
        if head != _PARQUET_MAGIC or stream.seek(0, 2) < 2 * len(_PARQUET_MAGIC):
            return False
        stream.seek(-len(_PARQUET_MAGIC), 2)
        return stream.read() == _PARQUET_MAGIC


def open_bytes(path: Path) -> BinaryIO:
    """The bytes of ``path``, decompressed as they are read when it is gzip."""
    with path.open("rb") as stream:
        compressed = stream.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else path.open("rb")


def plain_name(path: Path) -> str:
    """The file name a format's name pattern is matched against: without a ``.gz`` suffix."""
    return path.name.removesuffix(".gz").removesuffix(".GZ")


def first_record(path: Path) -> str:
    """The first record of a text file (its header, when it has one), decoded."""
    with open_bytes(path) as stream:
        record, _ = _reading(path, lambda: _read_first_record(stream))
    return record


def _reading(path: Path, read: Callable[[], _T]) -> _T:
    """``read()``, with a damaged compressed file said as a DataFormatError naming it."""
    try:
        return read()
    except _GZIP_ERRORS as error:
        raise DataFormatError(f"{path}: cannot read it as gzip: {error}") from None


def split_header(text: str, delimiter: str) -> list[str]:
    """A header record's column names (quoted names allowed)."""
    try:
        rows = list(csv.reader([text], delimiter=delimiter, strict=True))
    except csv.Error:
        return []
    return rows[0] if len(rows) == 1 else []


def _read_first_record(stream: BinaryIO) -> tuple[str, int]:
    """The first record and how many physical lines it spans; the stream is left after it.

    A quote left open for ``MAX_RECORD_LINES`` lines (or to the end) makes the first line alone
    the record, as in the body of the file.
    """
    start = stream.tell()
    parts: list[bytes] = []
    quotes = 0
    while len(parts) < MAX_RECORD_LINES:
        line = stream.readline()
        if not line:
            break
        parts.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            break
    if quotes % 2:
        parts = parts[:1]
        stream.seek(start + len(parts[0]))
    data = b"".join(parts).removeprefix(_BOM)
    text = data.decode("utf-8", errors="replace").removesuffix("\n").removesuffix("\r")
    return text, len(parts)


class TextSource(Closing):
    """A delimited text file, read chunk by chunk after its header (if it has one)."""

    def __init__(self, path: Path, *, delimiter: str, header: tuple[str, ...] | None) -> None:
        self.path = path
        self.delimiter = delimiter
        self._stream = open_bytes(path)
        if header is None:
            self.header_text, n_header_lines = _reading(
                path, lambda: _read_first_record(self._stream)
            )
            self.columns = split_header(self.header_text, delimiter)
        else:
            if _reading(path, lambda: self._stream.read(len(_BOM))) != _BOM:
                self._stream.seek(0)
            self.header_text, n_header_lines, self.columns = "", 0, list(header)
        self._first_line = n_header_lines + 1

    def chunks(
        self, *, columns: tuple[str, ...], chunk_rows: int, quarantine: Quarantine
    ) -> Iterator[RawChunk]:
        """Records of about ``chunk_rows`` lines each, with only ``columns`` kept."""
        positions = [self.columns.index(c) for c in columns]  # first occurrence of each
        line = self._first_line
        blocks = _blocks(self._stream, chunk_rows)
        while (block := _reading(self.path, lambda: next(blocks, None))) is not None:
            chunk, n_lines = _split_block(self, block, line, positions, columns, quarantine)
            line += n_lines
            if len(chunk.lines):
                yield chunk

    def close(self) -> None:
        self._stream.close()


class ParquetSource(Closing):
    """A Parquet file, read in row batches; every column is taken as text like a CSV field.

    Reading Parquet values as text keeps one validation path for all sources; a record's "line"
    is its 1-based row number.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise DataFormatError(f"cannot read {path} as Parquet: {error}") from None
        self.columns = list(self._file.schema_arrow.names)
        self.header_text = ",".join(self.columns)

    def chunks(
        self, *, columns: tuple[str, ...], chunk_rows: int, quarantine: Quarantine
    ) -> Iterator[RawChunk]:
        """Row batches of ``chunk_rows`` rows with only ``columns`` kept (nothing to quarantine)."""
        row = 1
        batches = self._file.iter_batches(batch_size=chunk_rows, columns=list(columns))
        while (batch := self._next(batches)) is not None:
            fields = pa.table({c: self._text(c, batch.column(c)) for c in columns})
            yield RawChunk(self.path, np.arange(row, row + batch.num_rows), fields, raw=None)
            row += batch.num_rows

    def _next(self, batches: Iterator[pa.RecordBatch]) -> pa.RecordBatch | None:
        try:
            return next(batches, None)
        except (pa.ArrowException, OSError) as error:
            raise DataFormatError(f"cannot read {self.path} as Parquet: {error}") from None

    def _text(self, name: str, values: pa.Array) -> pa.Array:
        try:
            return pc.fill_null(pc.cast(values, pa.string()), "")
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            raise DataFormatError(
                f"{self.path}: column {name!r} of type {values.type} cannot be read as text"
            ) from None

    def close(self) -> None:
        self._file.close()


def open_source(path: Path, log_format: LogFormat) -> TextSource | ParquetSource:
    """The reader for ``path``: Parquet when the file says so, delimited text otherwise."""
    if is_parquet(path):
        return ParquetSource(path)
    mapping = log_format.mapping
    return TextSource(path, delimiter=mapping.delimiter, header=mapping.header)


def _blocks(stream: BinaryIO, chunk_rows: int) -> Iterator[bytes]:
    """Blocks of at least ``chunk_rows`` whole lines (fewer at the end), never cut in a record."""
    pending, eof = b"", False
    block_size = chunk_rows * _BYTES_PER_LINE_GUESS  # then learnt from the last block
    while True:
        cut = _cut(pending, chunk_rows)
        while cut is None and not eof:
            # Growing by at least half each time keeps the re-scans of ``pending`` linear.
            more = stream.read(max(block_size * 9 // 8 - len(pending), len(pending) // 2, 1024))
            eof = not more
            pending += more
            cut = _cut(pending, chunk_rows)
        if cut is None:
            cut = len(pending)  # the end of the file: fewer than chunk_rows + MAX_RECORD_LINES
        if cut == 0:
            return
        yield pending[:cut]
        pending, block_size = pending[cut:], cut


def _cut(data: bytes, chunk_rows: int) -> int | None:
    """End of the first record ending on or after line ``chunk_rows``; None: read more.

    Only records whose framing the data already settles count: a quote opened fewer than
    ``MAX_RECORD_LINES`` lines before the end of ``data`` may still close in what follows.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == _NL)
    if len(ends) < chunk_rows:
        return None
    records = _records(_odd_lines(buf, ends), len(ends), final=False)
    candidates = records.last[records.last >= chunk_rows - 1]
    return int(ends[candidates[0]]) + 1 if len(candidates) else None


@dataclass(frozen=True)
class _Records:
    """Lines grouped into records, by line index (0-based in the data framed)."""

    first: np.ndarray  # [n] first line of each record
    last: np.ndarray  # [n] last line of each record
    unterminated: np.ndarray  # [n] bool: a quote opens on this line and closes nowhere in reach


def _odd_lines(buf: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Indices of the lines (ending at ``ends``) holding an odd number of quotes."""
    quotes_before_end = np.searchsorted(np.flatnonzero(buf == _QUOTE), ends)
    return np.flatnonzero(np.diff(quotes_before_end, prepend=0) % 2 == 1)


def _records(odd_lines: np.ndarray, n_lines: int, *, final: bool) -> _Records:
    """Frame ``n_lines`` lines into records by quote parity, ``MAX_RECORD_LINES`` at most each.

    A line with an odd number of quotes opens a quote; the next such line closes it when it lies
    fewer than ``MAX_RECORD_LINES`` lines on, and the lines from opener to closer are one record.
    Otherwise the opener is a record of its own, unterminated. Unless ``final``, a quote whose
    closer could still come after line ``n_lines`` stops the framing: the records returned end
    before its line. The loop runs over the odd lines only, a few in a well-formed log.
    """
    odd = odd_lines.tolist()
    spans, unterminated, settled = [], [], n_lines
    k = 0
    while k < len(odd):
        opener = odd[k]
        if k + 1 < len(odd) and odd[k + 1] - opener < MAX_RECORD_LINES:
            spans.append((opener, odd[k + 1]))
            k += 2
        elif final or n_lines - opener >= MAX_RECORD_LINES:
            unterminated.append(opener)
            k += 1
        else:
            settled = opener
            break
    inside = np.zeros(settled + 1, dtype=np.int64)  # +1 when a span starts, -1 after it ends
    for opener, closer in spans:
        inside[opener + 1] += 1
        inside[closer + 1] -= 1
    first = np.flatnonzero(np.cumsum(inside[:settled]) == 0)
    last = np.append(first[1:], settled) - 1
    return _Records(first, last, np.isin(first, unterminated))


@dataclass(frozen=True)
class _Frame:
    """Where the records of a block lie: byte spans and the line each starts on."""

    starts: np.ndarray  # [n] first byte of each record
    stops: np.ndarray  # [n] byte of the '\n' that ends each record
    lines: np.ndarray  # [n] source line of each record's first byte
    unterminated: np.ndarray  # [n] bool: the record is a line whose quote never closes


def _frame(buf: np.ndarray, first_line: int) -> _Frame:
    """The records of a whole block (it ends on a settled record, so its framing is final)."""
    ends = np.flatnonzero(buf == _NL)
    line_starts = np.concatenate(([0], ends[:-1] + 1))
    records = _records(_odd_lines(buf, ends), len(ends), final=True)
    return _Frame(
        starts=line_starts[records.first],
        stops=ends[records.last],
        lines=first_line + records.first,
        unterminated=records.unterminated,
    )


def _count_between(positions: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    return np.searchsorted(positions, stops) - np.searchsorted(positions, starts)


def _split_block(
    source: TextSource,
    block: bytes,
    first_line: int,
    positions: list[int],
    columns: tuple[str, ...],
    quarantine: Quarantine,
) -> tuple[RawChunk, int]:
    """The records of one block split into ``columns``, and how many lines the block spans.

    Records that cannot be split are quarantined here.
    """
    block = _valid_utf8(block if block.endswith(b"\n") else block + b"\n")
    buf = np.frombuffer(block, dtype=np.uint8)
    frame = _frame(buf, first_line)
    n_lines = int(np.count_nonzero(buf == _NL))
    offsets = np.append(frame.starts, frame.stops[-1] + 1).astype(np.int64)
    raw = pa.LargeStringArray.from_buffers(
        len(frame.starts), pa.py_buffer(offsets), pa.py_buffer(block)
    )
    # A CR right before the '\n' is a CRLF line end, not content.
    crlf = (frame.stops > frame.starts) & (buf[np.maximum(frame.stops - 1, 0)] == _CR)
    content_stops = frame.stops - crlf
    delimiters = np.flatnonzero(buf == ord(source.delimiter))
    n_fields = _count_between(delimiters, frame.starts, content_stops) + 1
    special = _count_between(
        np.flatnonzero((buf == _QUOTE) | (buf == _CR)), frame.starts, content_stops
    )
    expected = len(source.columns)

    reasons = np.full(len(frame.starts), None, dtype=object)
    reasons[content_stops == frame.starts] = "empty line"
    open_lines = frame.lines[frame.unterminated]
    reasons[frame.unterminated] = [f"unterminated quote from line {n}" for n in open_lines]
    plain = (special == 0) & pd.isna(reasons)
    wrong = plain & (n_fields != expected)
    reasons[wrong] = [_wrong_count(expected, k) for k in n_fields[wrong]]
    fast = np.flatnonzero(plain & ~wrong)
    quoted = np.flatnonzero((special > 0) & pd.isna(reasons))
    slow, slow_rows = _split_quoted(raw, quoted, source, reasons)

    rejected = np.flatnonzero(~pd.isna(reasons))
    quarantine.add(
        file=source.path,
        lines=frame.lines[rejected],
        field=None,
        reason=reasons[rejected],
        raw=_strip_line_end(raw.take(pa.array(rejected, type=pa.int64()))).to_pylist(),
    )
    fields = _parse_plain(block, raw, fast, source.delimiter, expected, positions, columns)
    kept = fast
    if len(slow):
        slow_fields = pa.table(
            {
                c: pa.array([row[p] for row in slow_rows], pa.string())
                for c, p in zip(columns, positions, strict=True)
            }
        )
        order = np.argsort(np.concatenate((fast, slow)), kind="stable")
        fields = pa.concat_tables([fields, slow_fields]).take(pa.array(order)).combine_chunks()
        kept = np.concatenate((fast, slow))[order]
    taken = pa.array(kept, type=pa.int64())
    return RawChunk(source.path, frame.lines[kept], fields, raw.take(taken)), n_lines


def _split_quoted(
    raw: pa.Array, candidates: np.ndarray, source: TextSource, reasons: np.ndarray
) -> tuple[np.ndarray, list[list[str]]]:
    """Split the quoted records with the csv module; those it cannot split get a reason."""
    kept, rows = [], []
    texts = _strip_line_end(raw.take(pa.array(candidates, type=pa.int64()))).to_pylist()
    for index, text in zip(candidates, texts, strict=True):
        try:
            parsed = list(csv.reader([text], delimiter=source.delimiter, strict=True))
        except csv.Error as error:
            reasons[index] = f"unreadable record: {str(error).split(' - ')[0]}"  # drop the hint
            continue
        if len(parsed) != 1:
            reasons[index] = "unreadable record: no fields"
        elif len(parsed[0]) != len(source.columns):
            reasons[index] = _wrong_count(len(source.columns), len(parsed[0]))
        else:
            kept.append(index)
            rows.append(parsed[0])
    return np.asarray(kept, dtype=np.int64), rows


def _parse_plain(
    block: bytes,
    raw: pa.Array,
    records: np.ndarray,
    delimiter: str,
    n_fields: int,
    positions: list[int],
    columns: tuple[str, ...],
) -> pa.Table:
    """Split unquoted records of exactly ``n_fields`` fields with pyarrow's CSV parser."""
    if len(records) == 0:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    if len(records) == len(raw):
        data = pa.py_buffer(block)
    else:
        taken = raw.take(pa.array(records, type=pa.int64()))
        value_offsets = np.frombuffer(taken.buffers()[1], dtype=np.int64)[taken.offset :]
        data = taken.buffers()[2].slice(
            int(value_offsets[0]), int(value_offsets[len(taken)] - value_offsets[0])
        )
    names = [str(i) for i in range(n_fields)]
    table = pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(column_names=names, block_size=len(data) + 1),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter,
            quote_char=False,
            newlines_in_values=False,
            ignore_empty_lines=False,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            include_columns=[names[p] for p in positions],
            strings_can_be_null=False,
        ),
    )
    return pa.table([table.column(names[p]) for p in positions], names=list(columns))


def _wrong_count(expected: int, got: int) -> str:
    return f"wrong number of fields: expected {expected}, got {got}"


def _valid_utf8(block: bytes) -> bytes:
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return block.decode("utf-8", errors="replace").encode("utf-8")
    return block


def _strip_line_end(raw: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(raw, pattern="\r?\n\\z", replacement="")
