"""Extraction's output side: valid rows into CSV parts on S3, rejected rows into the quarantine
file with their reason, the Personalize rules applied in key order on the way."""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from operator import itemgetter

from include.pipeline import rules
from include.pipeline.extract_result import ExtractionError
from include.pipeline.s3_writer import MultipartObjectWriter

QUARANTINE_COLUMNS = ("rule", "reason")


def _parse_record(record: bytes) -> list[str]:
    return next(csv.reader([str(record, "utf-8")]))


class PartitionWriter:
    """Valid rows into part-NNNNN.csv files of at most `chunk_rows` rows, each with the header."""

    def __init__(self, client, bucket: str, prefix: str, header: Sequence[str], chunk_rows, part_size):
        self._client, self._bucket, self._prefix = client, bucket, prefix
        self._header, self._chunk_rows, self._part_size = list(header), chunk_rows, part_size
        self.hasher = hashlib.sha256()
        self.keys: list[str] = []
        self.bytes_written = 0
        self._current: MultipartObjectWriter | None = None
        self._writer = None
        self._rows_in_part = 0

    def _open_part(self) -> None:
        key = f"{self._prefix}part-{len(self.keys):05d}.csv"
        self._current = MultipartObjectWriter(
            self._client, self._bucket, key, part_size=self._part_size, hasher=self.hasher, binary=True
        )
        self.keys.append(key)
        # Valid values never hold \r or \n (a Personalize rule), so \n-terminated lines are safe.
        self._writer = csv.writer(_Utf8Writer(self._current), lineterminator="\n")
        self._writer.writerow(self._header)
        self._rows_in_part = 0

    def _close_part(self) -> None:
        if self._current is not None:
            current, self._current = self._current, None
            current.close()
            self.bytes_written += current.bytes_written

    def writerow(self, row: Sequence[str | None]) -> None:
        if self._rows_in_part >= self._chunk_rows or self._current is None:
            self._close_part()
            self._open_part()
        self._writer.writerow(row)
        self._rows_in_part += 1

    def write_block(self, block: bytes, lines: int) -> None:
        """`lines` whole records, each a line `csv_line_pattern` matched: exactly the bytes
        `writerow` would write for them."""
        while lines:
            if self._rows_in_part >= self._chunk_rows or self._current is None:
                self._close_part()
                self._open_part()
            take = min(lines, self._chunk_rows - self._rows_in_part)
            if take < lines:  # crosses into the next part: once per part, so a split is cheap
                cut = len(b"".join(line + b"\n" for line in block.split(b"\n", take)[:take]))
                head, block = block[:cut], block[cut:]
            else:
                head = block
            self._current.write(head)
            self._rows_in_part += take
            lines -= take

    def close(self) -> None:
        self._close_part()

    def abort(self) -> None:
        if self._current is not None:
            self._current.abort()
            self._current = None


class _Utf8Writer:
    """Text in, UTF-8 bytes out: lets csv.writer write into a binary object."""

    def __init__(self, target: MultipartObjectWriter):
        self._target = target

    def write(self, text: str) -> int:
        return self._target.write(text.encode("utf-8"))


class QuarantineWriter:
    def __init__(self, client, bucket: str, key: str, header: Sequence[str], part_size: int):
        self.key = key
        self._object = MultipartObjectWriter(client, bucket, key, part_size=part_size)
        # Every field quoted: Python 3.11's writer leaves a lone \r unquoted when the line ends in \n,
        # and rejected values are exactly where line breaks turn up.
        self._writer = csv.writer(self._object, lineterminator="\n", quoting=csv.QUOTE_ALL)
        self._writer.writerow([*header, *QUARANTINE_COLUMNS])

    def writerow(self, row: Sequence[str | None], violation: rules.Violation) -> None:
        self._writer.writerow([*row, f"{violation.field}:{violation.code}", violation.reason])

    def close(self) -> None:
        self._object.close()

    def abort(self) -> None:
        self._object.abort()


class RecordSorter:
    """Sends each record to the output or, with the rule it breaks, to the quarantine.

    Records arrive in key order, so a duplicate directly follows the record it repeats: only the last
    written key is kept. Keys are compared as UTF-8 bytes whichever path a record takes.

    Raw PostgreSQL CSV records go in batches: one regex pass (`_run_pattern`) finds the longest run
    of lines that `csv_line_pattern` vouches for and whose key differs from the line before, and
    the run is written as one block; only the lines that stop a run are parsed and judged alone.
    """

    def __init__(self, schema: rules.DatasetSchema, output: PartitionWriter, open_quarantine):
        self._schema = schema
        self._output = output
        self._open_quarantine = open_quarantine
        self.quarantine: QuarantineWriter | None = None
        self.read = self.written = 0
        self.rejected: Counter[str] = Counter()
        self._last_key = None
        self._duplicate = rules.duplicate(schema.key_fields)
        key_indexes = [schema.field_names.index(n) for n in schema.key_fields]
        self._key_of = itemgetter(*key_indexes)
        self._key_groups = [i + 1 for i in key_indexes]
        self._line = schema.csv_line_pattern().match
        self._run = _run_pattern(schema).match

    def _key_bytes(self, row: Sequence[str]) -> tuple[bytes, ...] | bytes:
        values = self._key_of(row)
        if isinstance(values, tuple):
            return tuple(str(v).encode("utf-8") for v in values)
        return str(values).encode("utf-8")

    def _reject(self, row: Sequence[str | None], violation: rules.Violation) -> None:
        if self.quarantine is None:
            self.quarantine = self._open_quarantine()
        self.quarantine.writerow(row, violation)
        self.rejected[f"{violation.field}:{violation.code}"] += 1

    def take_row(self, row: Sequence[str | None]) -> None:
        """One record as values (SQLite rows, parsed CSV)."""
        self.read += 1
        violation = self._schema.check_values(row)
        if violation is None:
            key = self._key_bytes(row)
            if key == self._last_key:
                violation = self._duplicate
            else:
                self._last_key = key
                self._output.writerow(row)
                self.written += 1
                return
        self._reject(row, violation)

    def take_records_one_by_one(self, records: list[bytes]) -> None:
        for record in records:
            self.take_row(_parse_record(record))

    def take_records(self, records: list[bytes]) -> None:
        """A batch of raw CSV records from PostgreSQL's COPY, one record per item."""
        blob = b"".join(records)
        index, position = 0, 0
        while index < len(records):
            run_end = self._run(blob, position).end()
            if run_end > position and self._key(blob, position) == self._last_key:
                run_end = position  # the run starts with a duplicate: judge it alone
            if run_end > position:
                # Plain lines only, so line i of the run is record index + i.
                lines = blob.count(b"\n", position, run_end)
                self._output.write_block(blob[position:run_end], lines)
                self.read += lines
                self.written += lines
                index += lines
                position = run_end
                self._last_key = self._key(records[index - 1])
            if index < len(records):
                # The record that ended the run, judged alone: a duplicate, or a value the fast test
                # cannot vouch for.
                record = records[index]
                self.take_row(_parse_record(record))
                index += 1
                position += len(record)

    def _key(self, data: bytes, position: int = 0) -> tuple[bytes, ...] | bytes:
        return self._line(data, position).group(*self._key_groups)

    def close(self) -> None:
        self._output.close()
        if self.quarantine is not None:
            self.quarantine.close()

    def abort(self) -> None:
        self._output.abort()
        if self.quarantine is not None:
            self.quarantine.abort()


def _run_pattern(schema: rules.DatasetSchema) -> re.Pattern[bytes]:
    """Consecutive lines that `csv_line_pattern` vouches for, stopping before a line whose key
    repeats the line before. The key fields lead every line (`fields_in_csv_order`), and plain values
    hold no commas, so equal keys are equal line prefixes: a backreference compares them."""
    values = [b"(?:%s)%s" % pair for pair in schema.csv_value_patterns()]
    key_size = len(schema.key_fields)
    if schema.field_names[:key_size] != list(schema.key_fields):
        raise ExtractionError(f"key fields {schema.key_fields} must lead the columns {schema.field_names}")
    key = b",".join(values[:key_size])
    rest = b"".join(b"," + v for v in values[key_size:])
    return re.compile(b"(?:(?P<key>%s)%s\n(?!(?P=key)[,\n]))*" % (key, rest))
