"""The `precompute` command: run every stage (`all`), one stage, describe a store (`info`),
compare its training runs (`compare`) or export its maps for other tools (`export`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from precompute.config import RunConfig, load_config
from precompute.errors import ConfigError, FeatureSpaceError
from precompute.extras import is_pipeline_module, needs_pipeline
from precompute.store import Store, read_json, write_json

log = logging.getLogger("precompute")

QUIET_LIBRARIES = ("faiss.loader", "openTSNE")  # INFO lines that say nothing to users


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    from precompute.pipeline import STAGES, cache_numba_kernels

    parser = _parser(list(STAGES))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for chatty in QUIET_LIBRARIES:
        logging.getLogger(chatty).setLevel(logging.WARNING)
    cache_numba_kernels()
    try:
        if args.command == "info":
            print(json.dumps(_info(Path(args.store)), indent=2))
            return 0
        if args.command == "export":
            from precompute.export import export_store

            print(export_store(Store.open(args.store), args.format, Path(args.out),
                               args.space, args.sample).line())
            return 0
        if args.command == "compare":
            from precompute.compare import format_table, runs_table

            print(format_table(runs_table(Store.open(args.store))))
            return 0
        store = Store.create(args.store)
        store.record_writer()
        config = resolve_config(store, args.config)
        names = list(STAGES) if args.command == "all" else [args.command]
        from tqdm.contrib.logging import logging_redirect_tqdm

        from precompute.pipeline import run_stages, stage_table

        began = time.perf_counter()
        with logging_redirect_tqdm():
            runs = run_stages(store, config, names, force=args.force)
        if len(runs) > 1:
            print(stage_table(runs))
        print(f"done in {time.perf_counter() - began:.0f} s: store {store.root}")
        return 0
    except FeatureSpaceError as exc:
        print(f"precompute: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if not is_pipeline_module(exc):
            raise
        print(f"precompute: error: {needs_pipeline(f'precompute {args.command}', exc.name)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "precompute: interrupted; finished work is kept, run the same command to resume",
            file=sys.stderr,
        )
        return 130


def resolve_config(store: Store, config_file: str | None) -> RunConfig:
    """The config given on the command line (saved into the store), else the store's own."""
    if config_file:
        config = load_config(config_file)
        write_json(store.config_path, config.to_dict())
        return config
    saved = read_json(store.config_path)
    if saved is None:
        raise ConfigError(
            f"store {store.root} has no config yet; pass --config FILE on the first run"
        )
    return RunConfig.from_dict(saved, source=str(store.config_path))


def _info(root: Path) -> dict:
    from precompute.info import describe_store

    return describe_store(Store.open(root))


def _parser(stages: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="precompute",
        description="Build a Feature Space Explorer store: ingest, embed, train (fine-tune), "
        "project, index, thumbnail, cluster, analyse. Every stage skips finished work and "
        "resumes after an interruption.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in ["all", *stages]:
        sub = commands.add_parser(
            name, help="run every stage in order" if name == "all" else f"run the {name} stage"
        )
        sub.add_argument("--store", required=True, help="store folder (created if missing)")
        sub.add_argument(
            "--config",
            help="TOML run config; saved into the store, so later runs may omit it",
        )
        sub.add_argument("--force", action="store_true", help="redo work that is up to date")
    info = commands.add_parser("info", help="print a JSON description of a store")
    info.add_argument("store", help="store folder")
    compare = commands.add_parser("compare", help="print the store's training runs side by side")
    compare.add_argument("store", help="store folder")
    export = commands.add_parser(
        "export", help="write the store's maps for other tools: parquet (Embedding Atlas, "
        "DuckDB), csv, projector (TensorFlow Embedding Projector)")
    export.add_argument("store", help="store folder")
    export.add_argument("--format", required=True, choices=["parquet", "csv", "projector"])
    export.add_argument("--out", required=True, help="folder the files are written into")
    export.add_argument("--space", action="append",
                        help="a space to export, e.g. efficientnet_lite0/pretrained/penultimate "
                        "(repeat for several; default: every space)")
    export.add_argument("--sample", type=int,
                        help="export a seeded random sample of this many images")
    return parser


if __name__ == "__main__":
    sys.exit(main())
