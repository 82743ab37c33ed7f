"""Browser-ready output: an IGV session that opens the genome with the
predicted, uncertainty and measured tracks in one click (File > Open Session in IGV desktop).

Paths in the session are relative to the session file, so the results folder
can be moved or copied as a whole.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from seq_unet.io.atomic import atomic_path

PRED_COLOR = "200,30,30"
MEASURED_COLOR = "30,30,30"
STD_COLOR = "120,120,220"


def _rel(path: str | os.PathLike, start: Path) -> str:
    return os.path.relpath(Path(path).resolve(), start.resolve())


def write_igv_session(out_xml: str | os.PathLike, fasta: str | os.PathLike, predicted: dict[str, str],
                      measured: dict[str, str] | None = None, locus: str | None = None,
                      uncertainty: dict[str, str] | None = None) -> Path:
    """Write an IGV desktop session (XML) with the FASTA as genome.

    Args:
        out_xml: session file to write.
        fasta: indexed FASTA (its ``.fai`` must sit beside it).
        predicted: track name -> predicted bigWig.
        measured: track name -> measured bigWig (optional).
        uncertainty: track name -> per-base standard deviation bigWig (Monte Carlo dropout; optional).
        locus: initial locus (default: the first chromosome).
    """
    out_xml = Path(out_xml)
    here = out_xml.parent
    here.mkdir(parents=True, exist_ok=True)
    if locus is None:
        with open(str(fasta) + ".fai") as fh:
            locus = fh.readline().split("\t")[0]
    session = ET.Element("Session", genome=_rel(fasta, here), locus=locus, version="8")
    resources = ET.SubElement(session, "Resources")
    panel = ET.SubElement(session, "Panel", name="DataPanel", height="600")
    entries = []
    for name, path in predicted.items():
        entries.append((f"{name} predicted", path, PRED_COLOR))
        if uncertainty and name in uncertainty:
            entries.append((f"{name} uncertainty (sd)", uncertainty[name], STD_COLOR))
        if measured and name in measured:
            entries.append((f"{name} measured", measured[name], MEASURED_COLOR))
    for label, path, color in entries:
        rel = _rel(path, here)
        ET.SubElement(resources, "Resource", name=label, path=rel, type="bigwig")
        ET.SubElement(panel, "Track", attributeKey=label, autoScale="true", clazz="org.broad.igv.track.DataSourceTrack",
                      color=color, fontSize="10", id=rel, name=label, renderer="LINE_PLOT", visible="true")
    ET.indent(session)
    with atomic_path(out_xml) as tmp:
        ET.ElementTree(session).write(tmp, encoding="UTF-8", xml_declaration=True)
    return out_xml
