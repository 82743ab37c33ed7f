"""Preparing the input FASTA: reading, checking and normalising it into an uncompressed, faidx-indexed copy.

Plain and gzip/bgzip input is read in units; files that are not FASTA are refused with
what they look like, sequence lines are checked byte by byte, headers cut to their name
and records re-wrapped, and the copy is indexed with pyfaidx.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import pyfaidx

from seq_unet.errors import InputError
from seq_unet.io.atomic import WRITE_ERRORS, atomic_path

# Bytes a sequence line may hold: nucleotide letters (IUPAC codes, U, and X as
# used by some maskers) in either case, and the gap/stop symbols '-', '*', '.'.
# Everything but A, C, G, T is coded as unknown.
_SEQUENCE_BYTES = b"ACGTURYKMSWBDHVNXacgturykmswbdhvnx-*."
# letters that are amino acids but never nucleotides
_PROTEIN_ONLY = frozenset(b"EFIJLOPQZefijlopqz")
_CHUNK = 1 << 23
_UTF8_BOM = b"\xef\xbb\xbf"

# the opening bytes of formats people give by mistake where a FASTA is expected
_MAGIC = {
    b"\x26\xfc\x8f\x88": "a bigWig file",
    b"\xeb\xf2\x89\x87": "a bigBed file",
    b"\x43\x27\x41\x1a": "a .2bit file (convert it with twoBitToFa)",
    b"BAM\x01": "a BAM file",
    b"CRAM": "a CRAM file",
    b"\x89HDF": "an HDF5 file",
    b"\x93NUMPY": "a NumPy array file",
    b"PK\x03\x04": "a zip archive (unzip it first)",
    b"BZh": "bzip2-compressed (decompress it, or recompress it with gzip or bgzip)",
    b"\xfd7zXZ\x00": "xz-compressed (decompress it, or recompress it with gzip or bgzip)",
    b"\x28\xb5\x2f\xfd": "zstd-compressed (decompress it, or recompress it with gzip or bgzip)",
    b"\xff\xfe": "UTF-16 text (save it as ASCII or UTF-8)",
    b"\xfe\xff": "UTF-16 text (save it as ASCII or UTF-8)",
}
_TEXT_FORMATS = {
    b"@": "FASTQ",
    b"LOCUS": "GenBank",
    b"ID   ": "EMBL",
    b"##gff": "GFF",
    b"##fileformat=VCF": "VCF",
    b"track": "a browser track",
    b"fixedStep": "wiggle",
    b"variableStep": "wiggle",
    b"@HD\t": "SAM",
}


def _looks_like(head: bytes) -> tuple[str | None, bool]:
    """What the opening bytes ``head`` of a non-FASTA file look like, and whether they are binary."""
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            return what, True
    if b"\x00" in head[:4096]:
        return "a binary file", True
    try:
        head[:4096].decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < 4092:  # not just a character cut at the end of the sample
            return "a binary file", True
    for prefix, what in sorted(_TEXT_FORMATS.items(), key=lambda kv: -len(kv[0])):
        if head.startswith(prefix):
            return what, False
    return None, False


class _FastaWriter:
    """Streaming normalisation of FASTA text into an indexable FASTA.

    Text arrives in units that end just before a line break; every unit but the
    first starts with the line break that ended the previous one. Headers are cut to
    their name; sequence lines are checked (C-level ``bytes.translate`` over the whole
    unit, a loop over lines only where a unit holds whitespace or a bad character)
    and re-wrapped at the width of each record's first line, which reproduces a
    well-formed record byte for byte and repairs ragged line lengths.
    """

    def __init__(self, src: Path, fout):
        self.src = src
        self.fout = fout
        self.sizes: dict[str, int] = {}
        self.header_line: dict[str, int] = {}
        self.name: str | None = None
        self.width = 0
        self.pending = b""
        self.line = 0  # the line ended by the first byte of the next unit

    def feed(self, text: bytes) -> None:
        """Process one unit, with line breaks already normalised to ``\\n``."""
        if self.line == 0:
            text = b"\n" + text
        counted, line_at_counted = 0, self.line

        def line_of(p: int) -> int:  # line holding position p (p never decreases)
            nonlocal counted, line_at_counted
            line_at_counted += text.count(b"\n", counted, p)
            counted = p
            return line_at_counted

        pos = 0
        while True:
            h = text.find(b"\n>", pos)
            stop = h if h >= 0 else len(text)
            if stop > pos + 1:
                self._sequence(text[pos:stop], line_of(pos))
            if h < 0:
                break
            eol = text.find(b"\n", h + 1)
            eol = len(text) if eol < 0 else eol
            self._header(text[h + 2 : eol], line_of(h + 1))
            pos = eol
        self.line += text.count(b"\n")

    def _header(self, header: bytes, line: int) -> None:
        self.finish()
        fields = header.split()
        if not fields:
            raise InputError(f"{self.src}: header without a name at line {line}")
        name = fields[0].decode("utf-8", errors="replace")
        if name in self.sizes:
            raise InputError(f"{self.src}: duplicate sequence name {name!r} at line {line} "
                             f"(first at line {self.header_line[name]})")
        self.name, self.sizes[name], self.header_line[name] = name, 0, line
        self.width, self.pending = 0, b""
        self.fout.write(b">" + fields[0] + b"\n")

    def _sequence(self, seg: bytes, line: int) -> None:
        """``seg``: ``\\n`` then lines of sequence, the first of them on line ``line + 1``."""
        if seg.translate(None, _SEQUENCE_BYTES + b"\n"):
            seg = self._checked_lines(seg, line)  # rare: whitespace or a bad byte somewhere
        else:
            while b"\n\n" in seg:
                seg = seg.replace(b"\n\n", b"\n")
            seg = seg.strip(b"\n")
        if not seg:
            return
        if self.name is None:
            raise InputError(f"{self.src} is not a FASTA file: line {line + 1} comes before any '>' header")
        if not self.width:
            first = seg.find(b"\n")
            self.width = first if first >= 0 else len(seg)
        bases = seg.replace(b"\n", b"")
        self.sizes[self.name] += len(bases)
        self._wrap(bases)

    def _checked_lines(self, seg: bytes, line: int) -> bytes:
        kept = []
        for k, raw in enumerate(seg.split(b"\n")):
            s = raw.strip()
            if not s:
                continue
            bad = s.translate(None, _SEQUENCE_BYTES)
            if bad:
                self._bad_byte(raw, bad[0], line + k)
            kept.append(s)
        return b"\n".join(kept)

    def _bad_byte(self, raw: bytes, byte: int, line: int) -> None:
        column = raw.find(bytes([byte])) + 1
        shown = raw.decode("utf-8", errors="replace").strip()
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        if self.name is None:
            raise InputError(f"{self.src} is not a FASTA file: line {line} comes before any '>' header: {shown!r}")
        where = f"{self.src}: line {line}, column {column} (sequence {self.name!r})"
        if byte in _PROTEIN_ONLY:
            raise InputError(f"{where}: {chr(byte)!r} is not a nucleotide code; is this a protein FASTA? "
                             f"Line: {shown!r}")
        names = {ord(" "): "a space", ord("\t"): "a tab"}
        what = names.get(byte) or (f"the character {chr(byte)!r}" if 32 < byte < 127 else f"the byte {byte:#04x}")
        raise InputError(f"{where}: {what} is not allowed in a sequence line (allowed: A, C, G, T, N and the "
                         f"other IUPAC codes in either case, '-', '*', '.'). Line: {shown!r}")

    def _wrap(self, bases: bytes) -> None:
        data = self.pending + bases
        w = self.width
        n = len(data) // w
        if n:
            rows = np.empty((n, w + 1), dtype=np.uint8)
            rows[:, :w] = np.frombuffer(data, dtype=np.uint8, count=n * w).reshape(n, w)
            rows[:, w] = ord("\n")
            self.fout.write(rows.tobytes())
        self.pending = data[n * w :]

    def finish(self) -> None:
        """End the current record: refuse it if empty, write its last line."""
        if self.name is None:
            return
        if self.sizes[self.name] == 0:
            raise InputError(f"{self.src}: sequence {self.name!r} is empty "
                             f"(header at line {self.header_line[self.name]})")
        if self.pending:
            self.fout.write(self.pending + b"\n")
            self.pending = b""


def _read_units(fin):
    """Yield the decompressed text in units cut just before a line break (``\\n``, ``\\r\\n`` or ``\\r``),
    line breaks normalised to ``\\n``."""
    carry = fin.read(len(_UTF8_BOM))
    if carry == _UTF8_BOM:  # some Windows editors start a text file with one
        carry = b""
    while True:
        block = fin.read(_CHUNK)
        buf = carry + block
        if not block:
            if buf:
                yield buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            return
        cut = max(buf.rfind(b"\n"), buf.rfind(b"\r"))
        if cut > 0 and buf[cut] == 10 and buf[cut - 1] == 13:
            cut -= 1  # keep a CRLF together
        if cut <= 0:
            carry = buf
            continue
        unit, carry = buf[:cut], buf[cut:]
        yield unit.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def prepare_fasta(src: str | os.PathLike, dst: str | os.PathLike) -> dict[str, int]:
    """Write ``src`` (plain or gzip/bgzip FASTA) as an uncompressed, faidx-indexed ``dst``.

    Line breaks (``\\n``, ``\\r\\n``, ``\\r``) are normalised to ``\\n``, blank lines
    and whitespace around lines dropped, each record's header cut to its name (first
    word), so the name pyfaidx reports is the name the user sees, and each record
    wrapped at the width of its first line. Returns the chromosome sizes in FASTA order.

    Raises:
        InputError: the file is missing, unreadable, truncated, not FASTA, has an
            empty or duplicate record, or a sequence line holds a byte that is no
            nucleotide code (digits, inner spaces, punctuation other than '-', '*', '.').
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise InputError(f"FASTA file {src} does not exist")
    if src.is_dir():
        raise InputError(f"FASTA file {src} is a directory, not a file")
    writer = None
    with atomic_path(dst) as tmp:
        try:
            with open(src, "rb") as fh:
                compressed = fh.read(2) == b"\x1f\x8b"
            opener = gzip.open if compressed else open
            with opener(src, "rb") as fh:  # refuse binary files before reading them as text
                head = fh.read(4096)
            what = next((w for m, w in _MAGIC.items() if head.startswith(m)), None)
            if what or b"\x00" in head:
                raise InputError(f"{src} is not a FASTA file: it looks like {what or 'a binary file'}")
            with opener(src, "rb") as fin, open(tmp, "wb") as fout:
                writer = _FastaWriter(src, fout)
                for text in _read_units(fin):
                    if writer.name is None:
                        _check_start(src, text, writer.line)
                    writer.feed(text)
                writer.finish()
        except InputError:
            raise
        except EOFError as exc:
            after = f" after line {writer.line}" if writer and writer.line > 1 else ""
            raise InputError(f"{src}: the compressed data ends early{after}: the file is truncated "
                             f"(an interrupted download or copy?) ({exc})") from exc
        except (gzip.BadGzipFile, zlib.error) as exc:
            after = f" after line {writer.line}" if writer and writer.line > 1 else ""
            raise InputError(f"{src}: the gzip data is corrupt{after} ({exc})") from exc
        except OSError as exc:
            if exc.errno in WRITE_ERRORS:  # the output, not the input: atomic_path reports it
                raise
            raise InputError(f"cannot read FASTA {src}: {exc.strerror or exc}") from exc
        if not writer.sizes:
            raise InputError(f"{src} holds no FASTA records")
    fai = Path(str(dst) + ".fai")
    fai.unlink(missing_ok=True)
    try:
        pyfaidx.Faidx(str(dst)).close()
    except pyfaidx.FastaIndexingError as exc:
        dst.unlink(missing_ok=True)
        fai.unlink(missing_ok=True)
        raise InputError(f"{src}: cannot index FASTA: {exc}") from exc
    return writer.sizes


def _check_start(src: Path, text: bytes, line: int) -> None:
    """Refuse a file whose first non-blank line is not a '>' header, saying what it looks like."""
    body = text if line else b"\n" + text
    head = body.lstrip()
    if not head or head.startswith(b">"):
        return
    what, binary = _looks_like(head)
    if binary:
        raise InputError(f"{src} is not a FASTA file: it looks like {what}")
    first = line + body.count(b"\n", 0, len(body) - len(head))
    shown = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    hint = f" (it looks like {what})" if what else ""
    raise InputError(f"{src} is not a FASTA file{hint}: line {first} comes before any '>' header: {shown!r}")

