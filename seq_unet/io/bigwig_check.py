"""bigWig file layout checks: refuse a file that is not a bigWig, or a truncated or
damaged one, before libBigWig (pyBigWig) reads it.

libBigWig trusts the offsets and counts written in the file; on some damage it
crashes the process or returns no values without a word. The checks here read
the bbi structures themselves and compare every offset and count with the file.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from seq_unet.errors import InputError

# bbi file layout (UCSC bigWig format, little-endian): a 64-byte header, one 24-byte
# header per zoom level, then sections found through the header's offsets: the
# chromosome B+ tree, the data, the R-tree index over the data, the zoom levels.
_BIGWIG_MAGIC = 0x888FFC26
_BIGBED_MAGIC = 0x8789F2EB
_CHROM_TREE_MAGIC = 0x78CA8C91
_INDEX_MAGIC = 0x2468ACE0
_HEADER = struct.Struct("<IHHQQQHHQQIQ")
_ZOOM = struct.Struct("<IIQQ")
_TREE_HEADER = struct.Struct("<IIIIQQ")
_NODE = struct.Struct("<BBH")


def _what_it_is(head: bytes) -> str:
    """A hint for a file that is not a bigWig, from its first bytes."""
    if len(head) >= 4 and struct.unpack("<I", head[:4])[0] == _BIGBED_MAGIC:
        return " (it is a bigBed file; tracks must be bigWig)"
    if head.startswith(b"\x1f\x8b"):
        return " (it is gzip-compressed; tracks must be bigWig)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("#", "browser"))]
    if lines and lines[0].startswith(">"):
        return " (it looks like FASTA)"
    first = lines[0].split() if lines else []
    if first and first[0] in ("track", "fixedStep", "variableStep"):
        return " (it looks like wiggle or bedGraph text; convert it with wigToBigWig or bedGraphToBigWig)"
    if len(first) >= 3 and first[1].isdigit() and first[2].isdigit():
        return " (it looks like bedGraph or BED text; convert it with bedGraphToBigWig)"
    return " (it is a text file)"


def check_bigwig_layout(path: str) -> None:
    """Refuse a file that is not a bigWig, or a truncated or damaged one, before pyBigWig reads it.

    libBigWig trusts the file's offsets and counts: a file cut within its zoom
    headers, or with a damaged chromosome list, crashes the process instead of
    raising. This reads the header, the zoom headers, the whole chromosome tree and
    the R-tree indexes of the data and the zoom levels (about a hundredth of the file),
    and checks every offset and count against the file; a damaged index entry would
    otherwise make pyBigWig return no values (NaN) for its region without a word.
    """
    def corrupt(what: str) -> InputError:
        return InputError(f"track file {path} is truncated or corrupt: {what}; copy or download it again")

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(4096)
            if size == 0:
                raise InputError(f"track file {path} is empty (0 bytes), not a bigWig file")
            if len(head) < 4 or struct.unpack("<I", head[:4])[0] != _BIGWIG_MAGIC:
                raise InputError(f"track file {path} is not a bigWig file{_what_it_is(head)}")
            if size < _HEADER.size:
                raise corrupt(f"it has only {size} bytes, fewer than a bigWig header")
            (_, _, n_zoom, tree_at, data_at, index_at, _, _, _, summary_at, _, ext_at) = _HEADER.unpack_from(head)
            if _HEADER.size + n_zoom * _ZOOM.size > size:
                raise corrupt(f"it has only {size:,} bytes, fewer than its {n_zoom} zoom-level headers need")
            fh.seek(_HEADER.size)
            zooms = [_ZOOM.unpack(fh.read(_ZOOM.size)) for _ in range(n_zoom)]
            # a file without values (only chromosomes in its header) has no data index
            needs = [(tree_at, _TREE_HEADER.size, "the chromosome list")]
            needs += [(data_at, 4, "the data"), (index_at, 48, "the data index")] if index_at else []
            needs += [(summary_at, 40, "the summary")] if summary_at else []
            needs += [(ext_at, 4, "the extension header")] if ext_at else []
            for level, (_, _, zdata, zindex) in enumerate(zooms, 1):
                needs += [(zdata, 4, f"zoom level {level}"), (zindex, 48, f"the index of zoom level {level}")]
            for offset, length, what in needs:
                if offset < _HEADER.size or offset + length > size:
                    raise corrupt(f"its header places {what} at byte {offset:,}, but the file has {size:,} bytes")
            n_chroms = _check_chrom_tree(fh, tree_at, size, corrupt)
            if index_at:
                _check_index(fh, index_at, data_at, size, n_chroms, corrupt, "data index")
            for level, (_, _, zdata, zindex) in enumerate(zooms, 1):
                _check_index(fh, zindex, zdata, size, n_chroms, corrupt, f"index of zoom level {level}")
    except IsADirectoryError:
        raise InputError(f"track file {path} is a directory, not a bigWig file") from None
    except OSError as exc:
        raise InputError(f"cannot read track file {path}: {exc.strerror or exc}") from exc


def _check_chrom_tree(fh, at: int, size: int, corrupt) -> int:
    """Walk the chromosome B+ tree: every node inside the file, every chromosome id once.

    Returns the number of chromosomes.
    """
    fh.seek(at)
    magic, block, key_size, val_size, n_items, _ = _TREE_HEADER.unpack(fh.read(_TREE_HEADER.size))
    if magic != _CHROM_TREE_MAGIC:
        raise corrupt(f"no chromosome list at byte {at:,}")
    item = key_size + 8
    if val_size != 8 or not 0 < key_size <= 1024 or block == 0 or n_items * item > size:
        raise corrupt("its chromosome list has an impossible layout")
    seen = np.zeros(n_items, dtype=bool)
    todo, visited = [at + _TREE_HEADER.size], set()
    while todo:
        node = todo.pop()
        if node in visited or len(visited) > n_items + 1 or node + _NODE.size > size:
            raise corrupt("its chromosome list points outside the file or loops")
        visited.add(node)
        fh.seek(node)
        leaf, _, count = _NODE.unpack(fh.read(_NODE.size))
        body = fh.read(count * item)
        if count > block or len(body) < count * item:
            raise corrupt("its chromosome list holds a node larger than the file allows")
        if leaf:
            ids = np.frombuffer(body, dtype=[("key", f"S{key_size}"), ("id", "<u4"), ("len", "<u4")])["id"]
            if (ids >= n_items).any() or seen[ids].any() or len(np.unique(ids)) != len(ids):
                raise corrupt("its chromosome list has invalid or repeated chromosome ids")
            seen[ids] = True
        else:
            todo.extend(np.frombuffer(body, dtype=[("key", f"S{key_size}"), ("child", "<u8")])["child"].tolist())
    if not seen.all():
        raise corrupt(f"its chromosome list names {int(seen.sum())} of the {n_items} chromosomes it announces")
    return n_items


_INDEX_HEADER = struct.Struct("<IIQIIIIQII")
_INDEX_LEAF = np.dtype([("c0", "<u4"), ("b0", "<u4"), ("c1", "<u4"), ("b1", "<u4"), ("at", "<u8"), ("n", "<u8")])
_INDEX_BRANCH = np.dtype([("c0", "<u4"), ("b0", "<u4"), ("c1", "<u4"), ("b1", "<u4"), ("at", "<u8")])


def _check_index(fh, at: int, data_at: int, size: int, n_chroms: int, corrupt, what: str) -> None:
    """Walk an R-tree index (of the data or of a zoom level): nodes inside the file, blocks
    between ``data_at`` and the index, valid chromosome ids."""
    fh.seek(at)
    magic, block, *_ = _INDEX_HEADER.unpack(fh.read(_INDEX_HEADER.size))
    if magic != _INDEX_MAGIC:
        raise corrupt(f"no {what} at byte {at:,}")
    todo, visited = [at + _INDEX_HEADER.size], set()
    while todo:
        node = todo.pop()
        if node in visited or not at < node <= size - _NODE.size or len(visited) > (size - at) // _NODE.size:
            raise corrupt(f"its {what} points outside the file or loops")
        visited.add(node)
        fh.seek(node)
        leaf, _, count = _NODE.unpack(fh.read(_NODE.size))
        kind = _INDEX_LEAF if leaf else _INDEX_BRANCH
        body = fh.read(count * kind.itemsize)
        if count > block or len(body) < count * kind.itemsize:
            raise corrupt(f"its {what} holds a node larger than the file allows")
        items = np.frombuffer(body, dtype=kind)
        if ((items["c0"] >= n_chroms) | (items["c1"] >= n_chroms) | (items["c0"] > items["c1"])
                | ((items["c0"] == items["c1"]) & (items["b0"] > items["b1"]))).any():
            raise corrupt(f"its {what} has impossible chromosome positions")
        if leaf:
            if ((items["at"] < data_at) | (items["at"] + items["n"] > at)).any():
                raise corrupt(f"its {what} points outside the data")
        else:
            todo.extend(items["at"].tolist())
