"""What a report was made from: configuration, input files, versions, seeds, preprocessing.

A report someone else reads must say how to reproduce it and what was left out.  This
module turns a dataset's ``preprocessing`` record (see :mod:`bayesimg.data.prepare`,
:func:`bayesimg.data.group_snps`, :func:`bayesimg.data.ld_prune`) into a tidy log of
every subject and SNP dropped and why, and gathers the configuration text, the input
files with their SHA-256 checksums, package versions and each fit's seed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pandas as pd

#: Suffixes that make up one PLINK 1 fileset given by its prefix.
_PLINK = (".bed", ".bim", ".fam")


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def input_files(paths: dict[str, str | os.PathLike | None]) -> pd.DataFrame:
    """One row per input file: role, path, size, SHA-256 (a PLINK prefix gives three rows)."""
    rows = []
    for role, value in paths.items():
        if not value:
            continue
        path = Path(value)
        files = [path] if path.is_file() else [path.with_name(path.name + s) for s in _PLINK
                                               if path.with_name(path.name + s).is_file()]
        for f in files:
            rows.append({"role": role, "path": str(f), "bytes": f.stat().st_size,
                         "sha256": sha256(f)})
    return pd.DataFrame(rows, columns=["role", "path", "bytes", "sha256"])


def preprocessing_log(preprocessing: dict[str, Any]) -> pd.DataFrame:
    """Every subject or SNP dropped in preprocessing: ``step, kind, item, reason, kept_instead``."""
    rows: list[dict[str, Any]] = []

    def add(step, kind, items, reason, partner=None):
        for item in items or []:
            rows.append({"step": step, "kind": kind, "item": str(item), "reason": reason,
                         "kept_instead": (partner or {}).get(item, "")})

    for table, dropped in (preprocessing.get("subjects_dropped") or {}).items():
        if isinstance(dropped, list | tuple):
            add("align subjects", "subject", dropped,
                f"missing from another input or with missing {table}")
    add("SNP quality", "snp", preprocessing.get("snps_dropped_maf"),
        f"minor-allele frequency < {preprocessing.get('min_maf')}")
    add("SNP quality", "snp", preprocessing.get("snps_dropped_missing"),
        f"missing calls > {preprocessing.get('max_snp_missing')}")
    add("SNP quality", "snp", preprocessing.get("snps_dropped_constant"), "constant genotype")
    grouping = preprocessing.get("grouping") or {}
    add("gene grouping", "snp", grouping.get("snps_dropped_unassigned"),
        f"outside every gene (window {grouping.get('window')} bp)")
    pruning = preprocessing.get("ld_pruning") or {}
    partners = {str(k): str(v) for k, v in (pruning.get("kept_partner") or {}).items()}
    add("LD pruning", "snp", pruning.get("snps_dropped"),
        f"r² > {pruning.get('r2')} with a kept SNP (within {pruning.get('within')})", partners)
    return pd.DataFrame(rows, columns=["step", "kind", "item", "reason", "kept_instead"])


def preprocessing_summary(preprocessing: dict[str, Any]) -> list[str]:
    """Markdown bullet lines: how many subjects/SNPs went in, were dropped, and why."""
    log = preprocessing_log(preprocessing)
    lines = []
    subjects = preprocessing.get("subjects_input")
    if subjects:
        lines.append("- Subjects in the inputs: " + ", ".join(f"{k} {v}" for k, v in
                                                             subjects.items()))
    if preprocessing.get("snps_input") is not None:
        lines.append(f"- SNPs read: {preprocessing['snps_input']}")
    for (step, reason), group in log.groupby(["step", "reason"], sort=False):
        examples = ", ".join(group["item"].head(5))
        more = f", … ({len(group)} in all)" if len(group) > 5 else ""
        lines.append(f"- {step}: {len(group)} {group['kind'].iloc[0]}(s) dropped — {reason} "
                     f"({examples}{more})")
    if preprocessing.get("genotypes_imputed"):
        lines.append(f"- Genotype calls imputed: {preprocessing['genotypes_imputed']} "
                     f"({preprocessing.get('genotype_imputation', '')})")
    pruning = preprocessing.get("ld_pruning") or {}
    if pruning.get("snps_protected"):
        lines.append("- Kept through LD pruning on request: "
                     + ", ".join(map(str, pruning["snps_protected"])))
    return lines


def fit_provenance(fits: dict[str, Any]) -> pd.DataFrame:
    """Per fit: method, seed, chains × draws, versions, backend, precision, created."""
    rows = []
    for name, fit in fits.items():
        attrs = fit.tree.attrs
        settings = fit.settings
        rows.append({"fit": name, "method": attrs.get("method"), "seed": attrs.get("seed"),
                     "chains": settings.get("chains"), "warmup": settings.get("warmup"),
                     "draws": settings.get("draws"), "backend": attrs.get("backend"),
                     "precision": attrs.get("precision"), "created": attrs.get("created"),
                     "versions": attrs.get("versions")})
    return pd.DataFrame(rows)
