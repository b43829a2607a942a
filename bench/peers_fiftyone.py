"""FiftyOne's side of bench/peers.py, run by FiftyOne's own Python (never the project's).

    FIFTYONE_DO_NOT_TRACK=true /tmp/peers/fo-venv/bin/python bench/peers_fiftyone.py \\
        POINTS.npz PORT

POINTS.npz holds x, y, category codes and category names (FiftyOne's environment has no
parquet reader). Builds a dataset of one sample per point (a file path that does not exist and
the category as a Classification), gives it the points with `compute_visualization(points=…)`
and serves the App on PORT; prints one JSON line of seconds, then serves until its stdin closes.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

DATASET = "peers-bench"
BRAIN_KEY = "peers"


def seconds_since(began: float) -> float:
    return round(time.perf_counter() - began, 3)


def main() -> None:
    points, port = sys.argv[1], int(sys.argv[2])
    began = time.perf_counter()
    import fiftyone as fo
    import fiftyone.brain as fob

    timings = {"import_s": seconds_since(began)}
    arrays = np.load(points)
    names = [str(name) for name in arrays["names"]]
    labels = [names[code] for code in arrays["codes"]]
    began = time.perf_counter()
    dataset = fo.Dataset(DATASET, overwrite=True)
    timings["dataset_s"] = seconds_since(began)
    began = time.perf_counter()
    dataset.add_samples([
        fo.Sample(filepath=f"/nonexistent/peers/{i:08d}.jpg",
                  ground_truth=fo.Classification(label=label))
        for i, label in enumerate(labels)
    ])
    timings["add_samples_s"] = seconds_since(began)
    began = time.perf_counter()
    fob.compute_visualization(dataset, points=np.column_stack([arrays["x"], arrays["y"]]),
                              brain_key=BRAIN_KEY)
    timings["compute_visualization_s"] = seconds_since(began)
    began = time.perf_counter()
    session = fo.launch_app(dataset, remote=True, port=port, address="127.0.0.1", auto=False)
    timings["launch_app_s"] = seconds_since(began)
    print(json.dumps({**timings, "dataset": DATASET, "brain_key": BRAIN_KEY}), flush=True)
    sys.stdin.read()
    session.close()
    dataset.delete()


if __name__ == "__main__":
    main()
