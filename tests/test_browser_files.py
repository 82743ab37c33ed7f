"""Browser-ready files: the IGV session and the UCSC track hub parse, name every
track, and every path in them resolves; the hub's .2bit genome reads back with
an independent reader (py2bit) as the FASTA, N and soft-masked blocks included."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import py2bit
import pytest

from seq_unet.io.bigwig_write import write_bigwig
from seq_unet.io.fasta import prepare_fasta
from seq_unet.io.twobit import write_twobit
from seq_unet.predict.browser import write_igv_session, write_track_hub

HUB_REQUIRED = {"hub", "shortLabel", "longLabel", "genomesFile", "email"}
TRACK_REQUIRED = {"track", "type", "bigDataUrl", "shortLabel", "longLabel"}


def stanzas(path: Path) -> list[dict[str, str]]:
    """Blank-line separated ``key value`` stanzas, as UCSC reads hub files."""
    out = []
    for block in path.read_text().split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
        if lines:
            fields = [ln.split(" ", 1) for ln in lines]
            assert all(len(f) == 2 and f[1].strip() for f in fields), f"{path}: key without value in {lines}"
            keys = [k for k, _ in fields]
            assert len(keys) == len(set(keys)), f"{path}: repeated key in {keys}"
            out.append(dict(fields))
    return out


@pytest.fixture()
def genome_and_tracks(tmp_path):
    rng = np.random.default_rng(5)
    seqs = {"chrA": 5000, "chr_B.2": 1234}
    src = tmp_path / "src.fa"
    text = {}
    for name, n in seqs.items():
        s = rng.choice(list("ACGTacgt"), n)
        s[100:160] = "N"
        s[700] = "R"  # IUPAC code: stored as N in .2bit
        text[name] = "".join(s)
    src.write_text("".join(f">{k}\n{v}\n" for k, v in text.items()))
    fasta = tmp_path / "genome" / "genome.fa"
    prepare_fasta(src, fasta)
    tracks = {}
    for kind in ("pred", "std", "obs"):
        for t in ("W303", "Dbf4myc long name"):
            p = tmp_path / kind / f"{t}.bw"
            write_bigwig(p, seqs, [(c, np.full(n, 1.5, np.float32)) for c, n in seqs.items()])
            tracks.setdefault(kind, {})[t] = str(p)
    return fasta, text, tracks


def test_twobit_reads_back_as_the_fasta(genome_and_tracks, tmp_path):
    fasta, text, _ = genome_and_tracks
    path = write_twobit(fasta, tmp_path / "g.2bit")
    tb = py2bit.open(str(path), True)
    try:
        assert dict(tb.chroms()) == {k: len(v) for k, v in text.items()}
        for name, seq in text.items():
            # soft-masked bases come back lower-case, N and IUPAC codes as N
            assert tb.sequence(name) == "".join(b if b in "ACGTacgt" else "N" for b in seq), name
            assert [(s, e) for s, e in tb.hardMaskedBlocks(name)] == [(100, 160), (700, 701)]
            lower = np.frombuffer(seq.encode(), np.uint8) >= ord("a")
            soft = np.zeros(len(seq), bool)
            for s, e in tb.softMaskedBlocks(name):
                soft[s:e] = True
            np.testing.assert_array_equal(soft, lower)
    finally:
        tb.close()


@pytest.mark.parametrize("assembly", [None, "sacCer3"])
def test_track_hub_is_complete_and_resolves(genome_and_tracks, tmp_path, assembly):
    fasta, _, t = genome_and_tracks
    hub = write_track_hub(tmp_path / "browser" / "hub", fasta, t["pred"], t["obs"], t["std"], genome="yeast test",
                          ucsc_assembly=assembly, email="lab@example.org")
    (h,) = stanzas(hub)
    assert HUB_REQUIRED <= set(h) and h["email"] == "lab@example.org"
    (g,) = stanzas(hub.parent / h["genomesFile"])
    db = g["genome"]
    assert db == (assembly or "yeast_test")
    trackdb = hub.parent / g["trackDb"]
    if assembly:
        assert "twoBitPath" not in g  # attaches to UCSC's own assembly
    else:  # assembly hub: the genome travels with it
        assert {"twoBitPath", "organism", "defaultPos", "description"} <= set(g)
        assert py2bit.open(str(hub.parent / g["twoBitPath"])).chroms("chrA") == 5000
        assert g["defaultPos"] == "chrA:1-5000"
    all_stanzas = stanzas(trackdb)
    containers = [s for s in all_stanzas if s.get("container") == "multiWig"]
    tracks = [s for s in all_stanzas if "container" not in s]
    assert len(tracks) == 6 and len(containers) == 2
    for c in containers:  # prediction over measurement, one fixed scale
        assert c["aggregate"] == "transparentOverlay" and c["autoScale"] == "off"
        lo, hi = (float(v) for v in c["viewLimits"].split(":"))
        assert lo < 1.5 < hi  # the tracks are 1.5 everywhere
        children = [s for s in tracks if s.get("parent") == c["track"]]
        assert [s["track"].rsplit("_", 1)[1] for s in children] == ["predicted", "measured"]
    for s in tracks:
        assert TRACK_REQUIRED <= set(s), s
        assert s["type"] == "bigWig"
        assert s["track"].replace("_", "a").isalnum() and s["track"][0].isalpha(), s["track"]
        assert len(s["shortLabel"]) <= 17 and len(s["longLabel"]) <= 80, s
        assert (trackdb.parent / s["bigDataUrl"]).resolve().is_file(), s["bigDataUrl"]
        assert not Path(s["bigDataUrl"]).is_absolute()
    assert len({s["track"] for s in tracks}) == 6
    # display order: each prediction overlaid on its measurement, then its uncertainty
    assert [s["track"] for s in all_stanzas[:4]] == ["W303_overlay", "W303_predicted", "W303_measured",
                                                      "W303_uncertainty"]


def test_igv_session_names_every_track_and_resolves(genome_and_tracks, tmp_path):
    fasta, _, t = genome_and_tracks
    session = write_igv_session(tmp_path / "browser" / "igv_session.xml", fasta, t["pred"], t["obs"],
                                uncertainty=t["std"])
    root = ET.parse(session).getroot()
    assert root.tag == "Session" and root.get("locus") == "chrA:1-5000"
    assert (session.parent / root.get("genome")).resolve() == fasta.resolve()
    resources = list(root.iter("Resource"))
    assert [r.get("name") for r in resources[:3]] == ["W303 predicted", "W303 measured", "W303 uncertainty (sd)"]
    assert len(resources) == 6
    for r in resources:
        assert (session.parent / r.get("path")).resolve().is_file(), r.get("path")
    panel = root.find("Panel")
    merged = [t for t in panel if t.get("clazz") == "org.broad.igv.track.MergedTracks"]
    assert [m.get("id") for m in merged] == ["W303_overlay", "Dbf4myc long name_overlay"]
    for m in merged:  # the prediction over its measurement, on one fixed scale
        sub = list(m.iter("Track"))[1:]
        assert [t.get("name").rsplit(" ", 1)[1] for t in sub] == ["predicted", "measured"]
        ranges = {(d.get("minimum"), d.get("maximum")) for t in sub for d in t.iter("DataRange")}
        assert len(ranges) == 1 and all(t.get("autoScale") == "false" for t in sub)
    tracks = {tr.get("id") for tr in root.iter("Track") if tr.get("clazz") != "org.broad.igv.track.MergedTracks"}
    assert tracks == {r.get("path") for r in resources}
