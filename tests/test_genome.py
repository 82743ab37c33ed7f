"""One-hot encoding, reverse complement and FASTA preparation."""

from __future__ import annotations

import numpy as np
import pytest

from seq_unet.errors import InputError
from seq_unet.io.bases import encode, one_hot, reverse_complement_codes
from seq_unet.io.fasta import prepare_fasta
from seq_unet.io.genome import Genome
from tests.conftest import write_fasta


def test_encode_known_codes():
    assert encode("ACGTNacgtRYn").tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 4, 4]


def test_one_hot_known_answer():
    x = one_hot(encode("ACGTN"))
    expected = np.array(
        [[1, 0, 0, 0, 0],
         [0, 1, 0, 0, 0],
         [0, 0, 1, 0, 0],
         [0, 0, 0, 1, 0]], dtype=np.float32)
    assert x.shape == (4, 5) and x.dtype == np.float32
    np.testing.assert_array_equal(x, expected)
    assert one_hot(encode("AC")[None]).shape == (1, 4, 2)


def test_reverse_complement_codes_and_one_hot_flip_agree():
    seq = "AACGTTGCAN"
    rc = reverse_complement_codes(encode(seq))
    assert "".join("ACGTN"[c] for c in rc) == "NTGCAACGTT"
    # reverse complement of one-hot (A,C,G,T order) = flip channels and positions
    np.testing.assert_array_equal(one_hot(rc), one_hot(encode(seq))[::-1, ::-1])


def test_prepare_fasta_gzip_crlf_and_soft_mask(tmp_path):
    src = write_fasta(tmp_path / "g.fa.gz", {"c1": "ACGTacgtNN" * 13, "c2": "GGCC"}, line=7, gz=True, crlf=True)
    sizes = prepare_fasta(src, tmp_path / "out.fa")
    assert sizes == {"c1": 130, "c2": 4}
    g = Genome(tmp_path / "out.fa")
    assert g.sizes == sizes
    assert g.codes("c1", 0, 10).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 4]
    # beyond the chromosome end: unknown padding
    assert g.codes("c2", 2, 6).tolist() == [1, 1, 4, 4]
    assert g.codes("c2", -2, 1).tolist() == [4, 4, 2]


@pytest.mark.parametrize(
    "content, message",
    [
        (">a\nACGT\n>a\nACGT\n", "duplicate sequence name 'a'"),
        (">a\n>b\nACGT\n", "sequence 'a' is empty"),
        (">a\nACGT\n>b\n", "sequence 'b' is empty"),
        ("hello world\n", "is not a FASTA file"),
        ("", "holds no FASTA records"),
    ],
)
def test_prepare_fasta_rejects_bad_files(tmp_path, content, message):
    src = tmp_path / "bad.fa"
    src.write_text(content)
    with pytest.raises(InputError, match=message):
        prepare_fasta(src, tmp_path / "out.fa")
    assert not (tmp_path / "out.fa").exists()


def test_missing_fasta(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        prepare_fasta(tmp_path / "nope.fa", tmp_path / "out.fa")
