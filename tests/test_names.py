"""The names of the output files."""

from seq_unet.io.names import BASELINES, baseline_name, bigwig, initiation_name, is_initiation, is_std, std_name


def test_output_file_names():
    assert bigwig("RT") == "RT.bw"
    assert bigwig(std_name("RT")) == "RT.std.bw"
    assert bigwig(initiation_name("RT")) == "RT.initiation.bw"
    assert [bigwig(baseline_name("RT", b)) for b in BASELINES] == ["RT.gc.bw", "RT.kmer_ridge.bw"]


def test_kinds_of_names():
    assert is_std(std_name("RT")) and not is_std("RT") and not is_std(initiation_name("RT"))
    assert is_initiation(initiation_name("RT")) and not is_initiation("RT") and not is_initiation(std_name("RT"))
    assert not is_std("RTstd") and not is_initiation("RTinitiation")
