"""Browser-ready output: an IGV session that opens the genome with the
predicted, uncertainty, initiation-rate and measured tracks in one click (File
> Open Session in IGV desktop), and a UCSC track hub (hub.txt, genomes.txt,
trackDb.txt) with the same tracks for the UCSC Genome Browser, JBrowse or IGV
(File > Load Track Hub).

Each predicted track is overlaid on its measured track, on one fixed shared
scale (IGV's merged track; the hub's ``multiWig`` container with a transparent
overlay), so the eye compares the two directly. The scale spans the 0.5th to
99.5th percentiles of both tracks' 1-kb means over the genome
(:func:`display_range`), not a 0-based autoscale that flattens them.

Paths in the session and the hub are relative to the file that names them, so
the results folder can be moved, copied or served over HTTP as a whole.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from seq_unet.io.atomic import atomic_path
from seq_unet.io.genome import read_chrom_sizes
from seq_unet.io.twobit import write_twobit

PRED_COLOR = "200,30,30"
MEASURED_COLOR = "30,30,30"
STD_COLOR = "120,120,220"
INIT_COLOR = "20,130,60"


def display_range(paths: list[str], bin_size: int = 1000, tail: float = 0.5) -> tuple[float, float]:
    """A shared display range for bigWigs: the ``tail`` and ``100 - tail`` percentiles of their pooled
    ``bin_size`` means (bins without data left out)."""
    import numpy as np
    import pyBigWig

    values = []
    for path in paths:
        bw = pyBigWig.open(str(path))
        try:
            for chrom, size in bw.chroms().items():
                n = max(1, size // bin_size)
                v = np.array(bw.stats(chrom, 0, size, nBins=n, type="mean"), dtype=float)
                values.append(v[np.isfinite(v)])
        finally:
            bw.close()
    pooled = np.concatenate(values) if values else np.array([])
    if not len(pooled):
        return 0.0, 1.0
    lo, hi = np.percentile(pooled, [tail, 100 - tail])
    if hi <= lo:
        hi = lo + 1.0
    pad = 0.05 * (hi - lo)
    return float(lo - pad), float(hi + pad)


def _rel(path: str | os.PathLike, start: Path) -> str:
    return os.path.relpath(Path(path).resolve(), start.resolve())


def _entries(predicted: dict[str, str], measured: dict[str, str] | None, uncertainty: dict[str, str] | None,
             initiation: dict[str, str] | None = None) -> list[tuple[str, str, str, str]]:
    """``(track, kind, path, color)`` in display order: each prediction, its measurement, its uncertainty,
    its initiation rate."""
    out = []
    for name, path in predicted.items():
        out.append((name, "predicted", path, PRED_COLOR))
        if measured and name in measured:
            out.append((name, "measured", measured[name], MEASURED_COLOR))
        if uncertainty and name in uncertainty:
            out.append((name, "uncertainty", uncertainty[name], STD_COLOR))
        if initiation and name in initiation:
            out.append((name, "initiation", initiation[name], INIT_COLOR))
    return out


def _first_chrom(fasta: str | os.PathLike) -> tuple[str, int]:
    return next(iter(read_chrom_sizes(str(fasta) + ".fai").items()))


def write_igv_session(out_xml: str | os.PathLike, fasta: str | os.PathLike, predicted: dict[str, str],
                      measured: dict[str, str] | None = None, locus: str | None = None,
                      uncertainty: dict[str, str] | None = None, initiation: dict[str, str] | None = None,
                      ranges: dict[str, tuple[float, float]] | None = None) -> Path:
    """Write an IGV desktop session (XML) with the FASTA as genome.

    Args:
        out_xml: session file to write.
        fasta: indexed FASTA (its ``.fai`` must sit beside it).
        predicted: track name -> predicted bigWig.
        measured: track name -> measured bigWig (optional). A track with both is
            shown as one overlay (IGV's merged track) of prediction and measurement.
        uncertainty: track name -> per-base standard deviation bigWig (optional).
        initiation: track name -> per-base initiation-rate bigWig (kinetic head; optional).
        ranges: track name -> (min, max) of the overlay's shared fixed scale (default:
            :func:`display_range` of the two bigWigs).
        locus: initial locus (default: the first 200 kb of the first chromosome).
    """
    out_xml = Path(out_xml)
    here = out_xml.parent
    here.mkdir(parents=True, exist_ok=True)
    if locus is None:  # a range, not a bare name, which igv.js would first look up as a gene online
        chrom, size = _first_chrom(fasta)
        locus = f"{chrom}:1-{min(size, 200_000)}"
    session = ET.Element("Session", genome=_rel(fasta, here), locus=locus, version="8")
    resources = ET.SubElement(session, "Resources")
    panel = ET.SubElement(session, "Panel", name="DataPanel", height="600")
    labels = {"predicted": "predicted", "uncertainty": "uncertainty (sd)", "measured": "measured",
              "initiation": "initiation rate (per min and kb)"}
    overlays: dict[str, ET.Element] = {}
    for name, kind, path, color in _entries(predicted, measured, uncertainty, initiation):
        label = f"{name} {labels[kind]}"
        rel = _rel(path, here)
        ET.SubElement(resources, "Resource", name=label, path=rel, type="bigwig")
        attrs = dict(attributeKey=label, autoScale="true", clazz="org.broad.igv.track.DataSourceTrack", color=color,
                     fontSize="10", height="80", id=rel, name=label, renderer="LINE_PLOT", visible="true")
        overlaid = kind in ("predicted", "measured") and measured and name in measured
        if not overlaid:
            ET.SubElement(panel, "Track", **attrs)
            continue
        if name not in overlays:
            lo, hi = (ranges or {}).get(name) or display_range([predicted[name], measured[name]])
            overlays[name] = ET.SubElement(panel, "Track", attributeKey=f"{name} predicted vs measured",
                                           clazz="org.broad.igv.track.MergedTracks", fontSize="10", height="120",
                                           id=f"{name}_overlay", name=f"{name}: predicted (red) vs measured (black)",
                                           renderer="LINE_PLOT", visible="true")
            overlays[name].set("range", f"{lo:.6g},{hi:.6g}")
        lo, hi = (float(v) for v in overlays[name].get("range").split(","))
        attrs.update(autoScale="false", height="120")
        track = ET.SubElement(overlays[name], "Track", **attrs)
        ET.SubElement(track, "DataRange", baseline=f"{lo:.6g}", drawBaseline="false", flipAxis="false",
                      maximum=f"{hi:.6g}", minimum=f"{lo:.6g}", type="LINEAR")
    for overlay in overlays.values():
        del overlay.attrib["range"]
    ET.indent(session)
    with atomic_path(out_xml) as tmp:
        ET.ElementTree(session).write(tmp, encoding="UTF-8", xml_declaration=True)
    return out_xml


HUB_LONG = {"predicted": "predicted by seq-unet", "uncertainty": "seq-unet uncertainty (sd)",
            "measured": "measured", "initiation": "seq-unet initiation rate (per min and kb)"}
HUB_SHORT = {"predicted": "pred", "uncertainty": "sd", "measured": "obs", "initiation": "init"}


def _hub_name(text: str) -> str:
    """A track or genome name UCSC accepts: letters, digits and underscores, starting with a letter."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if name[:1].isalpha() else f"t_{name}"


def _stanza(fields: list[tuple[str, str]]) -> str:
    return "".join(f"{k} {v}\n" for k, v in fields)


def _track_stanzas(db_dir: Path, predicted: dict[str, str], measured: dict[str, str] | None,
                   uncertainty: dict[str, str] | None, initiation: dict[str, str] | None,
                   ranges: dict[str, tuple[float, float]] | None) -> list[str]:
    """The trackDb.txt stanzas (in folder ``db_dir``): a prediction with a measurement goes into a
    ``multiWig`` container overlaying both on one scale, every other track stands alone."""
    stanzas = []
    containers: dict[str, tuple[float, float]] = {}
    for name, kind, path, color in _entries(predicted, measured, uncertainty, initiation):
        overlaid = kind in ("predicted", "measured") and measured and name in measured
        fields = [
            ("track", _hub_name(f"{name}_{kind}")),
            ("type", "bigWig"),
            ("bigDataUrl", _rel(path, db_dir).replace(os.sep, "/")),
            ("shortLabel", f"{name[:16 - len(HUB_SHORT[kind])]} {HUB_SHORT[kind]}"),  # UCSC: at most 17
            ("longLabel", f"{name} {HUB_LONG[kind]}"[:80]),
            ("color", color),
        ]
        if overlaid:
            if name not in containers:
                lo, hi = (ranges or {}).get(name) or display_range([predicted[name], measured[name]])
                containers[name] = (lo, hi)
                stanzas.append(_overlay_stanza(name, lo, hi))
            stanzas.append(_stanza(fields + [("parent", _hub_name(f"{name}_overlay"))]))
            continue
        stanzas.append(_stanza(fields + [
            ("visibility", "full"),
            ("autoScale", "on"),
            ("alwaysZero", "off" if kind != "initiation" else "on"),
            ("maxHeightPixels", "100:60:8"),
            ("windowingFunction", "mean"),
        ]))
    return stanzas


def _overlay_stanza(name: str, lo: float, hi: float) -> str:
    """The ``multiWig`` container of a track's prediction and measurement, on the fixed scale lo..hi."""
    return _stanza([
        ("track", _hub_name(f"{name}_overlay")),
        ("container", "multiWig"),
        ("aggregate", "transparentOverlay"),
        ("showSubtrackColorOnUi", "on"),
        ("type", f"bigWig {lo:.6g} {hi:.6g}"),
        ("shortLabel", f"{name[:13]} fit"),
        ("longLabel", f"{name} predicted (red) vs measured (black), one scale"[:80]),
        ("visibility", "full"),
        ("autoScale", "off"),
        ("viewLimits", f"{lo:.6g}:{hi:.6g}"),
        ("maxHeightPixels", "100:60:8"),
        ("windowingFunction", "mean"),
    ])


def write_track_hub(hub_dir: str | os.PathLike, fasta: str | os.PathLike, predicted: dict[str, str],
                    measured: dict[str, str] | None = None, uncertainty: dict[str, str] | None = None,
                    genome: str = "genome", ucsc_assembly: str | None = None, email: str = "",
                    initiation: dict[str, str] | None = None,
                    ranges: dict[str, tuple[float, float]] | None = None) -> Path:
    """Write a UCSC track hub: ``hub.txt``, ``genomes.txt`` and ``<genome>/trackDb.txt``.

    Args:
        hub_dir: folder of the hub (``hub.txt`` goes here).
        fasta: indexed FASTA of the genome the tracks are on.
        predicted, measured, uncertainty, initiation, ranges: as for :func:`write_igv_session`; a
            prediction with a measurement is a ``multiWig`` container overlaying both on one scale.
        genome: name of the genome (data.name).
        ucsc_assembly: a UCSC assembly the FASTA is identical to (e.g. ``sacCer3``): the hub
            then attaches to it, with UCSC's own annotation beside the tracks. Otherwise an
            assembly hub is written, with the genome as ``<genome>/genome.2bit``.
        email: contact for the hub (hub.txt requires the field).

    Returns:
        The path of ``hub.txt``. A browser loads it by URL once the results folder is
        served over HTTP(S) (UCSC) or from disk (IGV desktop).
    """
    hub_dir = Path(hub_dir)
    db = _hub_name(ucsc_assembly or genome)
    trackdb = hub_dir / db / "trackDb.txt"
    chrom, size = _first_chrom(fasta)
    genomes = [("genome", db), ("trackDb", f"{db}/trackDb.txt")]
    if not ucsc_assembly:  # assembly hub: the browser needs the sequence itself
        write_twobit(fasta, hub_dir / db / "genome.2bit")
        genomes += [("twoBitPath", f"{db}/genome.2bit"), ("organism", genome), ("description", genome),
                    ("scientificName", genome), ("defaultPos", f"{chrom}:1-{min(size, 200_000)}"), ("orderKey", "1")]
    stanzas = _track_stanzas(trackdb.parent, predicted, measured, uncertainty, initiation, ranges)
    hub = _stanza([("hub", _hub_name(f"seq_unet_{genome}")), ("shortLabel", f"seq-unet {genome}"[:17]),
                   ("longLabel", f"seq-unet predictions on {genome}"[:80]), ("genomesFile", "genomes.txt"),
                   ("email", email or "none")])
    for path, text in ((trackdb, "\n".join(stanzas)), (hub_dir / "genomes.txt", _stanza(genomes)),
                       (hub_dir / "hub.txt", hub)):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return hub_dir / "hub.txt"
