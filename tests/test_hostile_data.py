"""Hostile inputs to the data layer (issue 7, point 4), as hypothesis properties.

Every reader and builder either returns an object that satisfies its documented
invariants (finite, standardised, unique labels, values equal to what was
written) or raises a :class:`~bayesimg.errors.BayesimgError` whose attributes
name the culprit (file, column, subject).  Any other exception fails the test;
so does an answer that is silently wrong (NaN/inf/overflowed standardisation,
genotypes attributed to the wrong subjects without a warning).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bed_reader import to_bed
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from bayesimg.data import GenotypeTable, make_dataset, make_views, read_plink, read_table
from bayesimg.errors import (
    BayesimgError,
    DataValidationError,
    DataWarning,
    InputFileError,
)

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

# --------------------------------------------------------------------------- cells
#: text a user may find in a numeric table cell
NUMERIC_TEXT = st.integers(0, 11).flatmap(lambda k: (
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr) if k < 5 else
    st.integers(-10**6, 10**6).map(str) if k < 10 else
    st.sampled_from(["", " ", "NA", "nan", "inf", "-inf", "1e400", "-1e308", "1e308",
                     "abc", "1,5", "0x10", "  3  ", "\u00a0", "True"])))
ID_TEXT = st.integers(0, 5).flatmap(lambda k: (
    st.sampled_from(["s1", "s2", "s3", " s1 ", "", "NA", "0", "s 4"]) if k == 0 else
    st.text(alphabet="abcXYZ019_-", min_size=3, max_size=6)))


def _is_named(err: BayesimgError, columns=(), subjects=(), path=None) -> bool:
    """The error carries at least one of file / column / subject, and they are real."""
    named = False
    for attr, allowed in (("column", columns), ("subject", subjects)):
        value = getattr(err, attr, None)
        if value is not None:
            assert str(value) in {str(a).strip() for a in allowed} | {str(a) for a in allowed}, \
                (attr, value, allowed)
            named = True
    for attr in ("source", "path"):
        value = getattr(err, attr, None)
        if value is not None:
            if path is not None:
                assert Path(value).name == Path(path).name
            named = True
    return named


# --------------------------------------------------------------------------- read_table
@st.composite
def csv_tables(draw):
    n_rows = draw(st.integers(0, 6))
    n_cols = draw(st.integers(0, 3))
    header = ["id"] + [draw(st.sampled_from(["x", "y", "z", "x", "w w", ""]))
                       for _ in range(n_cols)]
    rows = []
    for _ in range(n_rows):
        cells = [draw(ID_TEXT)] + [draw(NUMERIC_TEXT) for _ in range(n_cols)]
        if draw(st.integers(0, 9)) == 0:                # ragged line
            cells = cells[: draw(st.integers(0, len(cells)))]
        rows.append(cells)
    return header, rows


@SETTINGS
@given(table=csv_tables())
def test_read_table_and_make_dataset_never_fail_silently(tmp_path, table):
    header, rows = table
    path = tmp_path / "pheno.csv"
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    ids = [r[0] for r in rows if r]
    try:
        df = read_table(path)
    except BayesimgError as err:
        assert isinstance(err, InputFileError | DataValidationError)
        assert _is_named(err, columns=header, subjects=ids, path=path), str(err)
        event(f"read_table: {type(err).__name__}")
        return
    # read: unique string IDs, the header's columns, float64 or text columns
    assert df.index.is_unique and all(isinstance(i, str) and i for i in df.index)
    assert list(df.columns) == [h.strip() for h in header[1:]]
    assert df.attrs["source"] == str(path)
    numeric = [c for c in df.columns if df[c].dtype == np.float64]
    if not numeric:
        return
    try:
        data = make_dataset(phenotypes=df[numeric], min_subjects=2)
    except BayesimgError as err:
        assert isinstance(err, DataValidationError)
        assert _is_named(err, columns=numeric, subjects=list(df.index)) or \
            "subjects" in str(err), str(err)
        return
    event("read_table + make_dataset: ok")
    Y = data.phenotypes
    assert np.isfinite(Y).all()
    np.testing.assert_allclose(Y.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(Y.std(axis=0), 1.0, rtol=1e-9)


def test_read_table_duplicated_header_is_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,x,y,x\na,1,2,3\nb,4,5,6\n")
    with pytest.raises(DataValidationError, match="more than once") as info:
        read_table(path)
    assert info.value.column == "x"


# --------------------------------------------------------------------------- make_dataset
HOSTILE_VALUES = st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308, 1e200, 1e-300, 0.0])


@st.composite
def tables(draw):
    """Phenotypes, covariates and genotypes with hostile values, IDs and dtypes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(3, 14))
    base_ids = [f"s{i}" for i in range(n)]

    def ids():
        out = list(base_ids)
        choice = draw(st.integers(0, 9))
        if choice == 0:                        # duplicated subject
            out[-1] = out[0]
        elif choice == 1:                      # misaligned: partly other subjects
            out = [f"t{i}" if i % 2 else s for i, s in enumerate(out)]
        elif choice == 2:                      # shuffled order
            out = list(rng.permutation(out))
        return out

    def frame(kind: str, k: int):
        values = rng.normal(size=(n, k)) * draw(st.sampled_from([1.0, 1e-8, 1e150, 1e300]))
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
            values[rng.integers(n), rng.integers(k)] = draw(HOSTILE_VALUES)
        if draw(st.integers(0, 4)) == 0:
            values[:, 0] = values[0, 0]          # constant column
        cols = [f"{kind}{j}" for j in range(k)]
        if k > 1 and draw(st.integers(0, 4)) == 0:
            cols[1] = cols[0]                    # duplicated column name
        df = pd.DataFrame(values, index=ids(), columns=cols)
        dtype = draw(st.sampled_from(["float"] * 6 + ["int", "object", "complex", "bool",
                                                     "category"]))
        col = cols[-1]
        if dtype == "int":
            df[col] = np.round(np.nan_to_num(df[col].to_numpy())).clip(-9, 9).astype(int)
        elif dtype == "object":
            df[col] = df[col].astype(str).astype(object)
        elif dtype == "complex":
            df[col] = df[col].to_numpy() + 1j
        elif dtype == "bool":
            df[col] = df[col].to_numpy() > 0
        elif dtype == "category":
            df[col] = pd.Categorical(np.where(rng.random(n) < 0.5, "a", "b"))
        return df

    pheno = frame("y", draw(st.integers(1, 3)))
    cov = frame("c", draw(st.integers(1, 2))) if draw(st.booleans()) else None
    d = draw(st.sampled_from([2, 5, 60]))      # p >> n included
    G = rng.integers(0, 3, size=(n, d)).astype(float)
    G[rng.random((n, d)) < draw(st.sampled_from([0.0, 0.0, 0.02, 0.5, 1.0]))] = np.nan
    if draw(st.integers(0, 6)) == 0:
        G[rng.integers(n), rng.integers(d)] = draw(st.sampled_from([3.0, -1.0, 0.5, np.inf]))
    snp_ids = [f"rs{j}" for j in range(d)]
    if draw(st.integers(0, 5)) == 0:
        snp_ids[-1] = snp_ids[0]
    snps = pd.DataFrame({"snp": snp_ids, "chrom": ["1"] * d, "pos": np.arange(d),
                         "a1": ["A"] * d, "a2": ["G"] * d, "gene": [None] * d})
    geno = GenotypeTable(subjects=np.asarray(ids(), dtype=object), values=G, snps=snps)
    return geno, pheno, cov


@settings(max_examples=150, deadline=None)
@given(t=tables())
def test_make_dataset_is_finite_standardised_or_names_the_culprit(t):
    geno, pheno, cov = t
    subjects = set(map(str, geno.subjects)) | set(map(str, pheno.index))
    columns = set(pheno.columns) | set(geno.snps["snp"])
    if cov is not None:
        subjects |= set(map(str, cov.index))
        columns |= set(cov.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        try:
            data = make_dataset(geno, pheno, cov, min_subjects=2)
        except BayesimgError as err:
            assert isinstance(err, DataValidationError)
            assert (_is_named(err, columns=columns, subjects=subjects)
                    or "subjects" in str(err)), str(err)
            event("make_dataset: named error")
            return
    event("make_dataset: ok")
    assert len(set(data.subjects)) == data.n_subjects
    assert set(data.subjects) <= subjects
    for arr in (data.genotypes, data.phenotypes, data.covariates):
        if arr is not None:
            assert arr.dtype == np.float64 and np.isfinite(arr).all()
    np.testing.assert_allclose(data.phenotypes.std(axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(data.genotypes.mean(axis=0), 0.0, atol=1e-9)
    assert (data.genotypes.std(axis=0) > 0).all()
    assert data.snps["snp"].is_unique
    # the rows really belong to the subjects they are labelled with
    rows = pd.Index(np.asarray(geno.subjects, dtype=str)).get_indexer(data.subjects)
    raw = pheno.loc[list(data.subjects)].to_numpy(dtype=float)
    back = data.phenotypes * data.preprocessing["phenotype_scale"] \
        + data.preprocessing["phenotype_center"]
    # exact up to rounding relative to each column's largest value
    peak = np.abs(raw).max(axis=0)
    assert (np.abs(back - raw) <= 1e-9 * peak + 1e-300).all()
    assert (rows >= 0).all()


def test_huge_phenotypes_standardise_without_overflow():
    y = np.r_[1e308, -1e308, np.linspace(-1, 1, 8)]
    data = make_dataset(phenotypes=pd.DataFrame({"y": y}, index=[f"s{i}" for i in range(10)]),
                        min_subjects=2)
    Y = data.phenotypes[:, 0]
    assert np.isfinite(Y).all()
    # sd = 1e308·√(2/10) (the rest is negligible): the outliers sit at ±√5
    np.testing.assert_allclose(Y[:2], [np.sqrt(5.0), -np.sqrt(5.0)], rtol=1e-12)
    assert data.phenotypes.std() == pytest.approx(1.0)


# --------------------------------------------------------------------------- make_views
@st.composite
def view_tables(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(2, 10))
    tables = {}
    for name in ("a", "b")[: draw(st.integers(1, 2))]:
        p = draw(st.integers(1, 4))
        values = rng.normal(size=(n, p)) * draw(st.sampled_from([1.0, 1e300]))
        values[rng.random((n, p)) < draw(st.sampled_from([0.0, 0.3, 1.0]))] = np.nan
        for _ in range(draw(st.integers(0, 2))):
            values[rng.integers(n), rng.integers(p)] = draw(HOSTILE_VALUES)
        ids = [f"s{i}" for i in range(n)]
        if draw(st.integers(0, 5)) == 0:
            ids[-1] = ids[0]
        if draw(st.booleans()):
            ids = ids[draw(st.integers(0, n - 1)):]
            values = values[len(values) - len(ids):]
        cols = [f"{name}{j}" for j in range(p)]
        if p > 1 and draw(st.integers(0, 5)) == 0:
            cols[-1] = cols[0]
        df = pd.DataFrame(values, index=ids, columns=cols)
        if draw(st.integers(0, 6)) == 0:
            df[cols[0]] = df[cols[0]].to_numpy() + 1j
        tables[name] = df
    outcome = None
    if draw(st.booleans()):
        y = rng.normal(size=n).astype(object)
        y[rng.integers(n)] = draw(st.sampled_from([np.nan, np.inf, "x", 1.0]))
        outcome = pd.Series(y, index=[f"s{i}" for i in range(n)], name="y")
    subjects = draw(st.sampled_from(["union", "intersection"]))
    return tables, outcome, subjects


@settings(max_examples=60, deadline=None)
@given(v=view_tables())
def test_make_views_is_finite_standardised_or_names_the_culprit(v):
    tables, outcome, subjects = v
    all_ids = set().union(*(map(str, t.index) for t in tables.values()))
    columns = set().union(*(map(str, t.columns) for t in tables.values()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        try:
            data = make_views(tables, outcome=outcome, subjects=subjects,
                              outcome_kind=None if outcome is None else "gaussian")
        except BayesimgError as err:
            assert isinstance(err, DataValidationError)
            assert (_is_named(err, columns=columns, subjects=all_ids | {f"s{i}" for i in
                                                                      range(20)})
                    or "subject" in str(err)), str(err)
            event("make_views: named error")
            return
    event("make_views: ok")
    assert len(set(data.subjects)) == data.n_subjects
    for view in data.views:
        obs = view.values[~np.isnan(view.values)]
        assert np.isfinite(obs).all()
        if view.likelihood == "gaussian":
            np.testing.assert_allclose(np.nanmean(view.values, axis=0), 0.0, atol=1e-9)
            np.testing.assert_allclose(np.nanstd(view.values, axis=0), 1.0, rtol=1e-6)
    if data.outcome is not None:
        assert not np.isinf(data.outcome).any()


def test_make_views_rejects_non_frames_with_a_name():
    view = pd.DataFrame({"f": [1.0, 2.0, 3.0]}, index=["a", "b", "c"])
    with pytest.raises(DataValidationError, match="covariates"):
        make_views({"v": view}, covariates=np.ones((3, 1)))
    with pytest.raises(DataValidationError, match="outcome"):
        make_views({"v": view}, outcome=np.ones(3), outcome_kind="gaussian")
    with pytest.raises(DataValidationError) as info:
        make_views({"v": view}, outcome=pd.Series(["1", "oops", "2"], index=view.index),
                   outcome_kind="gaussian")
    assert info.value.subject == "b"


# --------------------------------------------------------------------------- PLINK
N_SNPS = 24


def _write_plink(prefix: Path, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 3, size=(n, N_SNPS)).astype(np.float64)
    # every subject is heterozygous somewhere, so no real subject looks like padding
    values[np.arange(n), np.arange(n) % N_SNPS] = 1.0
    values[rng.random((n, N_SNPS)) < 0.05] = np.nan
    iids = [f"S{i}" for i in range(n)]
    to_bed(f"{prefix}.bed", values.astype(np.float32), properties={
        "fid": iids, "iid": iids, "sid": [f"rs{j}" for j in range(N_SNPS)],
        "chromosome": ["1"] * N_SNPS, "bp_position": list(range(100, 100 + 10 * N_SNPS, 10)),
        "allele_1": ["A"] * N_SNPS, "allele_2": ["G"] * N_SNPS})
    return values


CORRUPTIONS = st.sampled_from([
    "none", "truncate_bed", "extend_bed", "bad_magic", "drop_fam_line", "add_fam_line",
    "drop_bim_line", "add_bim_line", "cut_fam_midline", "cut_bim_midline", "empty_fam",
    "empty_bim", "duplicate_fam_id", "duplicate_bim_id", "missing_bim", "garbage_bim"])


@SETTINGS
@given(n=st.integers(1, 11), seed=st.integers(0, 2**16), corruption=CORRUPTIONS,
       k=st.integers(1, 3))
def test_read_plink_detects_truncated_and_mismatched_files(tmp_path, n, seed, corruption, k):
    prefix = tmp_path / f"g{n}_{seed}_{corruption}_{k}"
    values = _write_plink(prefix, n, seed)
    bed, bim, fam = (Path(f"{prefix}.{s}") for s in ("bed", "bim", "fam"))
    fam_lines = fam.read_text().splitlines(keepends=True)
    bim_lines = bim.read_text().splitlines(keepends=True)
    k_fam = min(k, n - 1) if corruption == "drop_fam_line" else k
    if corruption == "truncate_bed":
        bed.write_bytes(bed.read_bytes()[:-k])
    elif corruption == "extend_bed":
        bed.write_bytes(bed.read_bytes() + b"\0" * k)
    elif corruption == "bad_magic":
        bed.write_bytes(b"PK\x03" + bed.read_bytes()[3:])
    elif corruption == "drop_fam_line":
        assume(k_fam >= 1)
        fam.write_text("".join(fam_lines[:-k_fam]))
    elif corruption == "add_fam_line":
        fam.write_text("".join(fam_lines) + "".join(f"X{i} X{i} 0 0 0 -9\n" for i in range(k)))
    elif corruption == "drop_bim_line":
        bim.write_text("".join(bim_lines[:-k]))
    elif corruption == "add_bim_line":
        bim.write_text("".join(bim_lines) + "".join(f"1\trsX{i}\t0\t999\tA\tG\n"
                                                    for i in range(k)))
    elif corruption == "cut_fam_midline":
        text = fam.read_text()
        fam.write_text(text[: len(text) - 1 - len(fam_lines[-1]) // 2])
    elif corruption == "cut_bim_midline":
        text = bim.read_text()
        bim.write_text(text[: len(text) - 1 - len(bim_lines[-1]) // 2])
    elif corruption == "empty_fam":
        fam.write_text("")
    elif corruption == "empty_bim":
        bim.write_text("")
    elif corruption == "duplicate_fam_id":
        assume(n >= 2)
        fam.write_text("".join(fam_lines[:-1]) + fam_lines[0])
    elif corruption == "duplicate_bim_id":
        bim.write_text("".join(bim_lines[:-1]) + bim_lines[0])
    elif corruption == "missing_bim":
        bim.unlink()
    elif corruption == "garbage_bim":
        bim.write_bytes(b"\xff\xfe\x00\x81 junk\n")

    culprits = {"truncate_bed": bed, "extend_bed": bed, "bad_magic": bed, "empty_fam": fam,
                "empty_bim": bim, "cut_fam_midline": fam, "cut_bim_midline": bim,
                "duplicate_fam_id": fam, "duplicate_bim_id": bim, "missing_bim": bim,
                "garbage_bim": bim, "drop_bim_line": bed, "add_bim_line": bed}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            table = read_plink(prefix)
        except BayesimgError as err:
            assert corruption != "none", str(err)
            where = getattr(err, "path", None) or getattr(err, "source", None)
            assert where is not None, str(err)
            if corruption in culprits:
                assert Path(where) == culprits[corruption], (corruption, str(err))
            event("read_plink: named error")
            return
    event(f"read_plink: read ({'warned' if caught else 'clean'})")
    warned = [w for w in caught if issubclass(w.category, DataWarning)]
    if corruption == "none":
        assert not warned
        np.testing.assert_array_equal(table.values, values)
        return
    # the only corruptions a .bed can carry silently: a .fam that is shorter or
    # longer by less than the padding of the last byte; they must be flagged
    assert corruption in ("drop_fam_line", "add_fam_line"), corruption
    same_bytes = math.ceil(table.n_subjects / 4) == math.ceil(n / 4)
    assert same_bytes
    assert len(warned) == 1 and "belong together" in str(warned[0].message)


# --------------------------------------------------------------------------- group_snps
@settings(max_examples=40, deadline=None)
@given(mapping=st.dictionaries(st.sampled_from([f"rs{j}" for j in range(6)] + ["zz", ""]),
                               st.one_of(st.none(), st.sampled_from(["g1", "g2", "g3", " "])),
                               max_size=8),
       unassigned=st.sampled_from(["drop", "singleton", "nearest"]))
def test_group_snps_never_makes_empty_or_split_groups(mapping, unassigned):
    from bayesimg.data import group_snps

    rng = np.random.default_rng(0)
    n, d = 10, 6
    G = rng.integers(0, 3, size=(n, d)).astype(float)
    G[np.arange(n), np.arange(n) % d] = 1.0
    snps = pd.DataFrame({"snp": [f"rs{j}" for j in range(d)], "chrom": ["1"] * d,
                         "pos": np.arange(d) * 100, "a1": ["A"] * d, "a2": ["G"] * d,
                         "gene": [None] * d})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = make_dataset(GenotypeTable(np.asarray([f"s{i}" for i in range(n)]), G, snps),
                            min_subjects=2)
        try:
            grouped = group_snps(data, mapping, unassigned=unassigned)
        except BayesimgError as err:
            assert isinstance(err, DataValidationError)
            event("group_snps: named error")
            return
    event("group_snps: ok")
    genes = grouped.snps["gene"].tolist()
    assert all(isinstance(g, str) and g for g in genes)
    sizes = grouped.preprocessing["grouping"]["gene_sizes"]
    assert all(s >= 1 for s in sizes.values()) and sum(sizes.values()) == grouped.n_snps
    # contiguous: each gene label forms one run
    runs = [g for i, g in enumerate(genes) if i == 0 or genes[i - 1] != g]
    assert len(runs) == len(set(genes))
    for snp, gene in zip(grouped.snps["snp"], genes, strict=True):
        given_gene = mapping.get(snp)
        if given_gene is not None and given_gene.strip():
            assert gene == given_gene.strip()
    # the genotype columns moved with their SNP labels
    order = [int(s[2:]) for s in grouped.snps["snp"]]
    np.testing.assert_array_equal(grouped.genotypes, data.genotypes[:, order])


@pytest.mark.parametrize("n,change", [(7, -1), (6, +1), (5, +3), (11, -2), (1, +2)])
def test_fam_off_by_less_than_the_bed_padding_is_flagged(tmp_path, n, change):
    prefix = tmp_path / "g"
    _write_plink(prefix, n, seed=1)
    fam = Path(f"{prefix}.fam")
    lines = fam.read_text().splitlines(keepends=True)
    extra = "".join(f"X{i} X{i} 0 0 0 -9\n" for i in range(max(change, 0)))
    fam.write_text("".join(lines[: n + min(change, 0)]) + extra)
    with pytest.warns(DataWarning, match="belong together"):
        table = read_plink(prefix)
    assert table.n_subjects == n + change
