"""FreeSurfer and ENIGMA tables, left/right pairs, visit tables and site covariates.

The FreeSurfer readers are tested on the real ABIDE I FreeSurfer 6 tables kept in
case_studies/data/abide_freesurfer/ (skipped when that folder is absent, e.g. in an
installed copy); ENIGMA and visit tables are small synthetic files written here.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesimg.data import (
    baseline_visits,
    make_dataset,
    pair_hemispheres,
    read_enigma_table,
    read_freesurfer_table,
    read_table,
    read_visits,
)
from bayesimg.errors import DataValidationError, DataWarning, InputFileError

ABIDE = Path(__file__).resolve().parents[2] / "case_studies" / "data" / "abide_freesurfer"
needs_abide = pytest.mark.skipif(not (ABIDE / "aseg_table.tsv").is_file(),
                                 reason="ABIDE FreeSurfer tables not in this checkout")


# --------------------------------------------------------------------------- FreeSurfer
@needs_abide
def test_asegstats2table_output_of_abide():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        aseg = read_freesurfer_table(ABIDE / "aseg_table.tsv")
    assert aseg.shape == (1035, 55) and aseg.index.name == "subject"
    assert aseg.attrs["table"] == "Measure:volume" and aseg.attrs["measure"] == "volume"
    assert aseg.attrs["parcellation"] == "aseg" and aseg.attrs["hemisphere"] is None
    assert set(aseg.attrs["units"].values()) == {"mm^3"}
    assert aseg.loc["Caltech_0051456", "Left-Lateral-Ventricle"] == 17950.0
    assert all(dtype == np.float64 for dtype in aseg.dtypes)
    expected = pd.read_csv(ABIDE / "aseg_table.tsv", sep="\t", index_col=0)
    np.testing.assert_array_equal(aseg.to_numpy(), expected.to_numpy())
    assert list(aseg.index) == list(expected.index)


@needs_abide
def test_aparcstats2table_outputs_of_abide_joined_and_paired():
    thick = read_freesurfer_table([ABIDE / "lh.aparc_table_thickness.tsv",
                                   ABIDE / "rh.aparc_table_thickness.tsv"])
    assert thick.shape == (1035, 70)
    assert thick.attrs["hemisphere"] == ["lh", "rh"]
    assert [Path(f).name for f in thick.attrs["sources"]] == [
        "lh.aparc_table_thickness.tsv", "rh.aparc_table_thickness.tsv"]
    assert thick.attrs["measure"] == ["thickness", "thickness"]
    assert thick.attrs["units"]["lh_bankssts_thickness"] == "mm"
    assert thick.attrs["units"]["rh_MeanThickness_thickness"] == "mm"
    area = read_freesurfer_table(ABIDE / "lh.aparc_table_area.tsv")
    assert area.attrs["table"] == "lh.aparc.area" and area.attrs["parcellation"] == "aparc"
    assert area.attrs["units"]["lh_insula_area"] == "mm^2"
    assert area.attrs["units"]["lh_WhiteSurfArea_area"] == "mm^2"

    pairs = pair_hemispheres(thick.columns)
    assert len(pairs) == 35 and pairs.attrs["unpaired"] == []
    row = pairs.set_index("region").loc["bankssts_thickness"]
    assert (row["left"], row["right"]) == ("lh_bankssts_thickness", "rh_bankssts_thickness")
    # every pair is usable as two columns of the table
    assert thick[pairs["left"]].shape == thick[pairs["right"]].shape == (1035, 35)


@needs_abide
def test_aseg_left_right_pairs_and_midline_structures():
    aseg = read_freesurfer_table(ABIDE / "aseg_table.tsv")
    pairs = pair_hemispheres(aseg.columns)
    regions = set(pairs["region"])
    assert {"Hippocampus", "Amygdala", "Lateral-Ventricle", "Thalamus-Proper",
            "WM-hypointensities", "CortexVol", "CorticalWhiteMatterVol"} <= regions
    assert len(pairs) == 18 and pairs.attrs["unpaired"] == []
    assert {"3rd-Ventricle", "Brain-Stem", "CSF", "CC_Anterior", "IntraCranialVol",
            "WM-hypointensities"} <= set(pairs.attrs["midline"])
    hip = pairs.set_index("region").loc["Hippocampus"]
    assert (hip["left"], hip["right"]) == ("Left-Hippocampus", "Right-Hippocampus")


@needs_abide
def test_freesurfer_na_values_and_bad_values_on_a_real_table(tmp_path):
    lines = (ABIDE / "lh.aparc_table_thickness.tsv").read_text().splitlines()[:8]
    cells = [line.split("\t") for line in lines]
    cells[2][3] = "NA"
    cells[4][5] = ""
    path = tmp_path / "lh.aparc_table_thickness.tsv"
    path.write_text("\n".join("\t".join(c) for c in cells) + "\n")
    with pytest.warns(DataWarning, match=r"2 missing values \(NA/empty\) in 2 columns.*"
                      "kept as NaN"):
        table = read_freesurfer_table(path)
    assert table.shape == (7, 35) and int(table.isna().sum().sum()) == 2
    assert np.isnan(table.iloc[1, 2])
    cells[3][7] = "2.4mm"
    path.write_text("\n".join("\t".join(c) for c in cells) + "\n")
    with pytest.raises(DataValidationError, match="non-numeric value '2.4mm'") as err:
        read_freesurfer_table(path)
    assert err.value.column == cells[0][7] and err.value.subject == cells[3][0]


@needs_abide
def test_freesurfer_join_announces_subjects_left_out(tmp_path):
    lines = (ABIDE / "rh.aparc_table_thickness.tsv").read_text().splitlines()
    short = tmp_path / "rh.tsv"
    short.write_text("\n".join(lines[:-3]) + "\n")
    with pytest.warns(DataWarning, match=r"kept the 1032 subjects.*3 only in "
                      r"lh.aparc_table_thickness.tsv"):
        joined = read_freesurfer_table([ABIDE / "lh.aparc_table_thickness.tsv", short])
    assert joined.shape == (1032, 70)


def test_freesurfer_named_errors(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_freesurfer_table(tmp_path / "none.tsv")
    other = tmp_path / "other.tsv"
    other.write_text("subject\tx\na\t1\n")
    with pytest.raises(InputFileError, match="not an aparcstats2table"):
        read_freesurfer_table(other)
    dup = tmp_path / "dup.tsv"
    dup.write_text("Measure:volume\tLeft-Hippocampus\ns1\t4000\ns1\t4100\n")
    with pytest.raises(DataValidationError, match="appears 2 times") as err:
        read_freesurfer_table(dup)
    assert err.value.subject == "s1"
    comma = tmp_path / "comma.csv"   # --delimiter comma
    comma.write_text("lh.aparc.a2009s.meancurv,lh_G_front_middle_meancurv\ns1,0.12\ns2,0.13\n")
    table = read_freesurfer_table(comma)
    assert table.attrs["parcellation"] == "aparc.a2009s"
    assert table.attrs["units"] == {"lh_G_front_middle_meancurv": "1/mm"}


def test_freesurfer_7_aseg_columns_space_delimited(tmp_path):
    path = tmp_path / "aseg_stats.txt"       # asegstats2table --delimiter space (FreeSurfer 7)
    path.write_text("Measure:volume Left-Hippocampus Right-Hippocampus lhSurfaceHoles "
                    "rhSurfaceHoles BrainSegVol-to-eTIV EstimatedTotalIntraCranialVol\n"
                    "sub-01 4100.5 4200.0 31 28 0.77 1.5e6\n"
                    "sub-02 3900.0 NaN 12 40 0.74 1.4e6\n")
    with pytest.warns(DataWarning, match="1 missing values"):
        table = read_freesurfer_table(path)
    assert table.shape == (2, 6) and list(table.index) == ["sub-01", "sub-02"]
    assert table.attrs["units"] == {
        "Left-Hippocampus": "mm^3", "Right-Hippocampus": "mm^3", "lhSurfaceHoles": "1",
        "rhSurfaceHoles": "1", "BrainSegVol-to-eTIV": "1",
        "EstimatedTotalIntraCranialVol": "mm^3"}
    pairs = pair_hemispheres(table.columns)
    assert list(pairs["region"]) == ["Hippocampus", "SurfaceHoles"]


# --------------------------------------------------------------------------- ENIGMA
ENIGMA_SUBCORTICAL = ["LLatVent", "RLatVent", "Lthal", "Rthal", "Lcaud", "Rcaud", "Lput",
                      "Rput", "Lpal", "Rpal", "Lhippo", "Rhippo", "Lamyg", "Ramyg",
                      "Laccumb", "Raccumb", "ICV"]
REGIONS = ["bankssts", "caudalanteriorcingulate", "entorhinal", "insula"]


def _enigma_frame(columns, rng, n=12, scale=1.0):
    frame = pd.DataFrame(rng.uniform(1, 2, size=(n, len(columns))) * scale, columns=columns)
    frame.insert(0, "SubjID", [f"site1_{i:03d}" for i in range(n)])
    return frame


def test_enigma_subcortical_volumes(tmp_path):
    rng = np.random.default_rng(0)
    frame = _enigma_frame(ENIGMA_SUBCORTICAL, rng, scale=4000.0)
    frame = frame.astype(object)
    frame.loc[3, "Lhippo"] = "NA"                 # ENIGMA QC marks failed ROIs NA
    path = tmp_path / "LandRvolumes.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(DataWarning, match="1 missing values"):
        table = read_enigma_table(path)
    assert table.attrs["id_column"] == "SubjID" and table.attrs["measure"] == "volume"
    assert table.shape == (12, 17) and np.isnan(table.loc["site1_003", "Lhippo"])
    assert set(table.attrs["units"].values()) == {"mm^3"}
    pairs = pair_hemispheres(table.columns)
    assert list(pairs["region"]) == ["LatVent", "thal", "caud", "put", "pal", "hippo",
                                     "amyg", "accumb"]
    assert pairs.attrs["midline"] == ["ICV"] and pairs.attrs["unpaired"] == []


def test_enigma_cortical_thickness_and_area(tmp_path):
    rng = np.random.default_rng(1)
    thick_cols = [f"{s}_{r}_thickavg" for s in "LR" for r in REGIONS] + [
        "LThickness", "RThickness", "ICV"]
    path = tmp_path / "CorticalMeasuresENIGMA_ThickAvg.csv"
    _enigma_frame(thick_cols, rng).to_csv(path, index=False)
    thick = read_enigma_table(path)
    assert thick.attrs["measure"] == "thickness"
    assert thick.attrs["units"]["L_insula_thickavg"] == "mm"
    assert thick.attrs["units"]["ICV"] == "mm^3"
    pairs = pair_hemispheres(thick.columns)
    assert len(pairs) == len(REGIONS) + 1
    assert ("LThickness", "RThickness", "Thickness") in set(map(tuple, pairs.to_numpy()))
    surf_cols = [f"{s}_{r}_surfavg" for s in "LR" for r in REGIONS] + ["LSurfArea",
                                                                       "RSurfArea"]
    path = tmp_path / "CorticalMeasuresENIGMA_SurfAvg.csv"
    _enigma_frame(surf_cols, rng, scale=1000).to_csv(path, index=False)
    surf = read_enigma_table(path)
    assert surf.attrs["measure"] == "area" and surf.attrs["units"]["RSurfArea"] == "mm^2"


def test_enigma_named_errors(tmp_path):
    rng = np.random.default_rng(2)
    frame = _enigma_frame(["Lthal", "Rthal"], rng).astype(object)
    frame.loc[5, "Rthal"] = "failed"
    path = tmp_path / "LandRvolumes.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match="non-numeric value 'failed'") as err:
        read_enigma_table(path)
    assert (err.value.column, err.value.subject) == ("Rthal", "site1_005")
    with pytest.raises(DataValidationError, match="ID column not found"):
        read_enigma_table(path, id_column="subject")


# --------------------------------------------------------------------------- pairs
def test_pair_hemispheres_conventions_and_unpaired_warning():
    names = ["Left_Hippocampus_vol", "Right_Hippocampus_vol", "lh.insula", "rh.insula",
             "Amygdala_L", "Amygdala_R", "L_cuneus", "age", "Lonely_lh", "Rate"]
    with pytest.warns(DataWarning, match="2 left/right measures have no partner.*L_cuneus"):
        pairs = pair_hemispheres(names)
    assert [tuple(r) for r in pairs.to_numpy()] == [
        ("Left_Hippocampus_vol", "Right_Hippocampus_vol", "Hippocampus_vol"),
        ("lh.insula", "rh.insula", "insula"), ("Amygdala_L", "Amygdala_R", "Amygdala")]
    assert pairs.attrs["unpaired"] == ["L_cuneus", "Lonely_lh"]
    assert {"age", "Rate"} <= set(pairs.attrs["midline"])
    with pytest.raises(DataValidationError, match="more than once"):
        pair_hemispheres(["a", "a"])


def test_demo_phenotypes_pair_up():
    import importlib.resources
    demo = importlib.resources.files("bayesimg.data") / "datasets" / "demo_1000g"
    with importlib.resources.as_file(demo / "phenotypes.csv") as path:
        pheno = read_table(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        pairs = pair_hemispheres(pheno.columns)
    assert sorted(pairs["region"]) == ["Amygdala_vol", "Entorhinal_thick",
                                       "Hippocampus_vol", "Lateral_Ventricle_vol"]
    assert all(pairs["left"].str.startswith("Left_") & pairs["right"].str.startswith("Right_"))


# --------------------------------------------------------------------------- visits
def _visits(tmp_path, rows, name="visits.csv"):
    path = tmp_path / name
    pd.DataFrame(rows, columns=["RID", "VISCODE", "AGE", "SITE", "scanner", "hippo"]).to_csv(
        path, index=False)
    return path


ROWS = [("s2", "m12", 71.0, 3, "Siemens Prisma", 3900.0),
        ("s2", "bl", 70.0, 3, "Siemens Prisma", 4000.0),
        ("s1", "bl", 64.5, 11, "GE 750", 4200.0),
        ("s1", "m24", 66.5, 11, "GE 750", ""),
        ("s1", "m12", 65.5, 11, "GE 750", 4150.0)]


def test_read_visits_long_table(tmp_path):
    long = read_visits(_visits(tmp_path, ROWS), subject="RID", visit="VISCODE", time="AGE")
    assert list(long.columns) == ["subject", "visit", "time", "SITE", "scanner", "hippo"]
    assert list(long["subject"]) == ["s2", "s2", "s1", "s1", "s1"]     # first seen, by time
    assert list(long["visit"]) == ["bl", "m12", "bl", "m12", "m24"]
    assert long["time"].dtype == np.float64 and long["hippo"].dtype == np.float64
    assert np.isnan(long["hippo"].iloc[-1])
    # numeric site codes stay categorical, like the scanner names
    assert long.attrs["categorical"] == ["SITE", "scanner"] and long["SITE"].iloc[0] == "3"
    assert long.attrs["n_subjects"] == 2 and long.attrs["visits_per_subject"] == (2, 3)
    assert long.attrs["columns"] == {"subject": "RID", "visit": "VISCODE", "time": "AGE"}


def test_duplicate_subject_visit_is_a_named_error(tmp_path):
    rows = ROWS + [("s1", "m12", 65.6, 11, "GE 750", 4100.0)]
    with pytest.raises(DataValidationError, match=r"visit 'm12' of subject 's1' appears on 2 "
                       r"rows \(data rows 5, 6\)") as err:
        read_visits(_visits(tmp_path, rows), subject="RID", visit="VISCODE", time="AGE")
    assert err.value.subject == "s1" and err.value.column == "VISCODE"


@pytest.mark.parametrize("age,why", [("", "missing time"), ("old", "non-numeric time")])
def test_visit_time_must_be_numeric_and_present(tmp_path, age, why):
    rows = list(ROWS)
    rows[2] = ("s1", "bl", age, 11, "GE 750", 4200.0)
    with pytest.raises(DataValidationError, match=why) as err:
        read_visits(_visits(tmp_path, rows), subject="RID", visit="VISCODE", time="AGE")
    assert err.value.subject == "s1" and err.value.column == "AGE"


def test_read_visits_other_named_errors(tmp_path):
    path = _visits(tmp_path, ROWS)
    with pytest.raises(DataValidationError, match="column not found") as err:
        read_visits(path, subject="RID", visit="visit")
    assert err.value.column == "visit"
    rows = list(ROWS)
    rows[0] = ("s2", "", 71.0, 3, "Siemens Prisma", 3900.0)
    with pytest.raises(DataValidationError, match="empty visit on data row 1"):
        read_visits(_visits(tmp_path, rows, "v2.csv"), subject="RID", visit="VISCODE")
    with pytest.raises(InputFileError, match="not found"):
        read_visits(tmp_path / "none.csv")


def test_sites_become_one_hot_covariates_through_make_dataset(tmp_path):
    rng = np.random.default_rng(3)
    n = 40
    frame = pd.DataFrame({"subject": np.repeat([f"s{i}" for i in range(n)], 2),
                          "visit": ["bl", "m12"] * n,
                          "age": np.repeat(rng.uniform(50, 80, n), 2) + [0.0, 1.0] * n,
                          "site": np.repeat(rng.integers(1, 4, n), 2),
                          "y": rng.normal(size=2 * n)})
    long = read_visits(frame, time="age")
    assert long.attrs["categorical"] == ["site"]
    base = baseline_visits(long)
    assert list(base.index[:2]) == ["s0", "s1"] and (base["visit"] == "bl").all()
    data = make_dataset(phenotypes=base[["y"]], covariates=base[["time", "site"]])
    encoding = data.preprocessing["covariates_one_hot"]["site"]
    assert encoding["levels"] == ["1", "2", "3"]
    assert list(data.covariate_names) == ["time", "site[2]", "site[3]"]
    with pytest.raises(DataValidationError, match="no subject has a visit"):
        baseline_visits(long, visit="m24")
    with pytest.warns(DataWarning, match="1 subjects have no visit 'm12'.*'s39'"):
        m12 = baseline_visits(long.iloc[:-1], visit="m12")
    assert len(m12) == n - 1


def test_read_table_keeps_numeric_site_codes_categorical(tmp_path):
    path = tmp_path / "cov.csv"
    pd.DataFrame({"IID": ["a", "b", "c", "d"], "SITE_ID": [1, 2, 1, 2],
                  "age": [50, 60, 70, 80]}).to_csv(path, index=False)
    cov = read_table(path)
    assert cov["SITE_ID"].tolist() == ["1", "2", "1", "2"]
    assert cov["age"].dtype == np.float64
    assert read_table(path, categorical=[])["SITE_ID"].dtype == np.float64


@needs_abide
def test_abide_freesurfer_volumes_with_site_covariates_through_make_dataset(tmp_path):
    """The real phenotype file, as distributed, has a saved pandas index as its first
    (unnamed) column and FILE_ID 'no_filename' for subjects without images: the index is
    ignored with a warning, the duplicated IDs are a named error until those rows go."""
    original = ABIDE / "Phenotypic_V1_0b_preprocessed1.csv"
    with pytest.warns(DataWarning, match="no name and holds the row numbers 0…"):
        with pytest.raises(DataValidationError, match="appears") as err:
            read_table(original, id_column="FILE_ID")
    assert err.value.subject == "no_filename"
    frame = pd.read_csv(original, dtype=str, keep_default_na=False)
    kept = tmp_path / "phenotypic.csv"
    frame[frame["FILE_ID"] != "no_filename"].iloc[:, 1:].to_csv(kept, index=False)
    cov = read_table(kept, id_column="FILE_ID", columns=["AGE_AT_SCAN", "SEX", "SITE_ID"],
                     categorical=["SEX", "SITE_ID"])
    aseg = read_freesurfer_table(ABIDE / "aseg_table.tsv")
    volumes = aseg[["Left-Hippocampus", "Right-Hippocampus"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)     # subjects only in one table
        data = make_dataset(phenotypes=volumes, covariates=cov)
    n_sites = cov.loc[data.subjects, "SITE_ID"].nunique()
    assert n_sites == 20 and data.n_subjects > 1000
    encoding = data.preprocessing["covariates_one_hot"]["SITE_ID"]
    assert len(encoding["columns"]) == n_sites - 1
    assert data.n_covariates == 1 + 1 + (n_sites - 1)      # age, sex[2], 19 site dummies
