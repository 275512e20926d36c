"""Command line: ``bayesimg demo`` and ``bayesimg fit CONFIG.toml``."""

from __future__ import annotations

import argparse
import sys
import warnings

from bayesimg.errors import (
    BayesimgError,
    ConvergenceWarning,
    DataValidationError,
    InputFileError,
    OutputFolderError,
)

#: Exit codes: 0 done; 2 bad usage, option or configuration (as argparse); 3 the output
#: destination is refused (it would overwrite files bayesimg did not create); 4 the input
#: data are missing, unreadable or invalid; 1 any other error bayesimg raised.
EXIT_USAGE, EXIT_OUTPUT, EXIT_DATA, EXIT_OTHER = 2, 3, 4, 1


def _build_parser() -> argparse.ArgumentParser:
    from bayesimg import __version__
    parser = argparse.ArgumentParser(
        prog="bayesimg",
        description="Bayesian models for brain imaging genomics (NumPyro/JAX, ArviZ).",
        epilog="Exit codes: 0 done, 2 usage or configuration error, 3 output folder refused "
               "(bayesimg never overwrites what it did not create), 4 input data error.")
    parser.add_argument("--version", action="version", version=f"bayesimg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="fit GSMTR on the bundled 1000 Genomes demo data")
    demo.add_argument("--out", default=None,
                      help="report folder to create (default: bayesimg_demo_report, or "
                           "bayesimg_demo_report_2, _3, ... if that exists)")
    demo.add_argument("--chains", type=int, default=4)
    demo.add_argument("--warmup", type=int, default=500)
    demo.add_argument("--draws", type=int, default=1000)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--full", action="store_true",
                      help="all 1,611 SNPs instead of the LD-pruned panel (slower: d > n)")
    demo.add_argument("--quick", action="store_true",
                      help="3 genes and short chains: a smoke test of the whole pipeline")
    demo.add_argument("--no-progress", action="store_true")
    demo.add_argument("--overwrite", action="store_true",
                      help="replace an earlier bayesimg report at --out (never anything else)")
    demo.add_argument("--include-data", action="store_true",
                      help="save the fits with genotypes, phenotypes and subject IDs (default: "
                           "without individual-level data, so the report can be shared)")

    from bayesimg.config import FAMILIES, keys_help
    fit = sub.add_parser(
        "fit", help="run a model of any family from a TOML configuration file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the model a TOML file describes. 'bayesimg config --example FAMILY' "
                    "prints a complete file for a family.",
        epilog="Keys of CONFIG.toml (families in brackets; others apply to all):\n"
               + keys_help())
    fit.add_argument("config", help="path to CONFIG.toml")
    fit.add_argument("--dry-run", action="store_true",
                     help="read and check the data, model, options and output folder, print "
                          "the plan, fit nothing")
    fit.add_argument("--no-progress", action="store_true")
    fit.add_argument("--overwrite", action="store_true",
                     help="replace an earlier bayesimg report at [output] folder (never "
                          "anything else)")
    fit.add_argument("--include-data", action="store_true",
                     help="save the fits with individual-level data (as [output] include_data)")

    config = sub.add_parser("config", help="print an example configuration file")
    config.add_argument("--example", choices=FAMILIES, default="gsmtr", metavar="FAMILY",
                        help=f"family: {', '.join(FAMILIES)} (default gsmtr)")
    config.add_argument("--method", choices=("nuts", "gibbs", "svi", "map"), default="gibbs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "config":
        from bayesimg.config import example
        print(example(args.example, args.method))
        return 0
    progress = not args.no_progress
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            if args.command == "demo":
                from bayesimg.jobs import run_demo
                out = args.out if args.out is not None else _new_folder("bayesimg_demo_report")
                result = run_demo(out, chains=args.chains, warmup=args.warmup,
                                  draws=args.draws, seed=args.seed, quick=args.quick,
                                  full=args.full, progress=progress,
                                  overwrite=args.overwrite, include_data=args.include_data)
            else:
                from bayesimg.config import load_config
                config = load_config(args.config)       # checked before JAX is imported
                if args.dry_run:
                    from bayesimg.jobs import plan_config
                    print(plan_config(config))
                    return 0
                from bayesimg.jobs import run_config
                result = run_config(config, progress=progress,
                                    overwrite=True if args.overwrite else None,
                                    include_data=True if args.include_data else None)
    except BayesimgError as err:
        print(f"bayesimg: error: {err}", file=sys.stderr)
        return _exit_code(err)
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"warning: {message}", file=sys.stderr)
    _print_result(result)
    return 0


def _new_folder(base: str) -> str:
    """``base``, or ``base_2``, ``base_3``, ... : the first name nothing exists at."""
    from pathlib import Path
    name, k = base, 2
    while Path(name).exists() or Path(name).is_symlink():
        name, k = f"{base}_{k}", k + 1
    return name


def _exit_code(err: BayesimgError) -> int:
    if isinstance(err, OutputFolderError):
        return EXIT_OUTPUT
    if isinstance(err, DataValidationError | InputFileError):
        return EXIT_DATA
    if isinstance(err, ValueError):  # ConfigError, ModelSpecError
        return EXIT_USAGE
    return EXIT_OTHER


def _print_result(result) -> None:
    from bayesimg.report import top_associations
    from bayesimg.report.intervals import interval_label

    best = result.fits[result.best]
    if result.comparison is not None:
        cols = [c for c in ("rank", "elpd", "p", "elpd_diff", "se", "dse", "weight",
                            "estimate") if c in result.comparison.columns]
        # each model's row names its estimate (integrated LOO where the family has the
        # exact form, else PSIS): a fixed "PSIS-LOO" title would misname it
        print("\nModel comparison (leave one subject out; `estimate` names each model's):")
        print(result.comparison[cols].to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"\nBest model: {result.best}")
    site = best.tree.attrs.get("association_site") or ""
    if site and site in best.posterior.data_vars:
        print(f"\nTop SNP→phenotype associations by posterior probability of their sign "
              f"({interval_label()} intervals):")
        hits = top_associations(best, n=15, by="prob_sign")
        keep = [c for c in hits.columns if c in ("snp", "phenotype", "mean", "sd", "prob_sign")
                or c.endswith("_lb") or c.endswith("_ub") or c == "excludes_zero"]
        print(hits[keep].to_string(float_format=lambda v: f"{v:.3f}"))
    if result.recovery is not None:
        rec = result.recovery
        print(f"\nPlanted effects (demo truth): {int(rec.same_sign.sum())} of {len(rec)} with the "
              f"right posterior sign, {int(rec.interval_excludes_0.sum())} with a 95% interval "
              "excluding 0 (planted_effects_recovery.csv; GSMTR's single λ shrinks every "
              "effect, true ones included)")
    print("\nDiagnostics:")
    print(best.diagnose())
    print(f"\nReport written to {result.folder}/ (report.md, tables, plots, saved fits) "
          f"in {result.seconds:.0f} s")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
