"""Open our Parquet export in Apple's Embedding Atlas and check what it serves.

Embedding Atlas (MIT) needs pandas 3, sentence-transformers and torch, so it lives in an
environment of its own: `python -m venv /tmp/atlas && /tmp/atlas/bin/pip install
embedding-atlas`. This script exports one space of a store (`precompute export --format
parquet`), serves the file with `embedding-atlas FILE --x umap_x --y umap_y --vector vector
--duckdb server`, and asks the running server, over its own HTTP API, for the table it
loaded: rows, columns, and a count by the first categorical attribute through its DuckDB
query endpoint. Each must equal the export's.

    python -m bench.embedding_atlas_export --atlas /tmp/atlas/bin/embedding-atlas

Results go to bench/results.json (measures named "embedding-atlas: …") and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from bench.measures import row
from bench.run import SAMPLE_STORE, print_table, save_rows
from precompute.export import export_store, file_stem
from precompute.store import CATEGORICAL, SpaceKey, Store
from tests.browser.server import free_port

SPACE = "efficientnet_lite0/pretrained/penultimate"


class AtlasServer:
    """A running `embedding-atlas` server: its base URL and the seconds it took to answer."""

    def __init__(self, base: str, ready_s: float):
        self.base, self.ready_s = base, ready_s

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.base + path, timeout=60) as reply:
            return reply.read()

    def sql(self, statement: str) -> list[dict]:
        """Rows of `statement` run by the server's DuckDB on the table it loaded."""
        body = json.dumps({"sql": statement, "type": "json"}).encode()
        request = urllib.request.Request(self.base + "/data/query", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.load(reply)


@contextlib.contextmanager
def atlas_serving(atlas: str, table: Path, timeout: float = 300) -> Iterator[AtlasServer]:
    """Embedding Atlas serving `table` with our coordinates and vectors, until the block ends."""
    port = free_port()
    command = [atlas, str(table), "--x", "umap_x", "--y", "umap_y", "--vector", "vector",
               "--duckdb", "server", "--host", "127.0.0.1", "--port", str(port),
               "--no-auto-port", "--no-mcp"]
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                urllib.request.urlopen(f"{base}/data/metadata.json", timeout=10).close()
                break
            except OSError:
                if process.poll() is not None or time.perf_counter() - began > timeout:
                    process.kill()
                    output = process.stdout.read().decode(errors="replace")
                    raise RuntimeError(f"embedding-atlas did not start:\n{output}") from None
                time.sleep(0.5)
        yield AtlasServer(base, time.perf_counter() - began)
    finally:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--atlas", required=True, help="the embedding-atlas executable")
    parser.add_argument("--store", type=Path, default=SAMPLE_STORE)
    parser.add_argument("--space", default=SPACE)
    args = parser.parse_args()
    store = Store.open(args.store)
    attribute = next(name for name, kind in store.images_meta()["attributes"].items()
                     if kind == CATEGORICAL)
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        export_store(store, "parquet", Path(folder), [args.space])
        export_s = time.perf_counter() - began
        path = Path(folder) / f"{file_stem(SpaceKey.parse(args.space))}.parquet"
        ours = pd.read_parquet(path)
        with atlas_serving(args.atlas, path) as atlas:
            served = pd.read_parquet(io.BytesIO(atlas.get("/data/dataset.parquet")))
            counts = atlas.sql(f'SELECT "{attribute}" AS value, count(*) AS n FROM dataset '
                               "GROUP BY 1")
    checks = {
        "rows": len(served) == len(ours),
        "columns": set(ours.columns) <= set(served.columns),
        "sample ids in order": served["sample_id"].tolist() == ours["sample_id"].tolist(),
        "coordinates": served[["umap_x", "umap_y"]].equals(ours[["umap_x", "umap_y"]]),
        "vector length": len(served["vector"].iloc[0]) == len(ours["vector"].iloc[0]),
        f"count by {attribute} (its DuckDB)":
            {r["value"]: r["n"] for r in counts} == ours[attribute].value_counts().to_dict(),
    }
    for name, passed in checks.items():
        print(f"{'ok  ' if passed else 'FAIL'} {name}")
    n, dim = len(ours), len(ours["vector"].iloc[0])
    rows = [
        row("parquet export of one space (ours)", n, dim, export_s * 1000, "ms"),
        row("embedding-atlas: start to serving our export", n, dim, atlas.ready_s * 1000, "ms"),
        row("embedding-atlas: checks passed on our export", n, dim, sum(checks.values()),
            f"of {len(checks)}", goal=len(checks), lower_is_better=False),
    ]
    print_table(rows)
    save_rows(rows)
    if not all(checks.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
