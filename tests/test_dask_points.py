"""The map through Dask (stores larger than memory): on a real local cluster, with the maps
kept in blocks of a few points so the 66 paintings span several, the Dask path renders the
same aggregate and the same image as the in-memory path, reading only the blocks a view
overlaps."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer import dask_points
from explorer.colours import TOP_CATEGORIES
from explorer.data import ExplorerData, load_explorer_data
from explorer.location import dask_scheduler
from explorer.point_table import Colouring
from explorer.scatter import EXTENT, MapRequest, map_aggregate, render_map
from precompute.stages.x_sorted import write_x_sorted
from precompute.store import SpaceKey, Store, sidecar_path

SPACE = SpaceKey("efficientnet_lite0/pretrained", "penultimate")
METHOD = "pca"
BLOCK_ROWS = 10  # 66 points: 7 blocks, the last one short
WHOLE = (EXTENT, EXTENT)


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a local cluster of two worker processes: the partitions are built and
    aggregated there, from the store read by path, as on a cluster of machines."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address
        dask_points.client(cluster.scheduler_address).close()


@pytest.fixture(scope="module")
def blocked_store(built_store, tmp_path_factory) -> Path:
    """A copy of the built store whose maps of SPACE are kept in blocks of BLOCK_ROWS points,
    so that the 66 paintings span several."""
    root = shutil.copytree(built_store, tmp_path_factory.mktemp("blocked") / "store")
    store = Store.open(root)
    for method in store.projection_methods(SPACE):
        write_x_sorted(store, SPACE, method, force=True, block_rows=BLOCK_ROWS)
    return root


@pytest.fixture
def both_ways(blocked_store, scheduler) -> tuple[ExplorerData, ExplorerData]:
    """The store opened in memory and opened through the cluster."""
    root = str(blocked_store.resolve())
    return load_explorer_data(root), load_explorer_data(root, scheduler)


def zoomed(data: ExplorerData) -> tuple[tuple[float, float], tuple[float, float]]:
    """A viewport around the middle of the map holding some of the points but not all."""
    coords = data.coords(SPACE, METHOD)
    x, y = np.median(coords, axis=0)
    box = ((float(x) - 0.35, float(x) + 0.35), (float(y) - 0.35, float(y) + 0.35))
    inside = ((coords[:, 0] >= box[0][0]) & (coords[:, 0] <= box[0][1])
              & (coords[:, 1] >= box[1][0]) & (coords[:, 1] <= box[1][1]))
    assert 5 < inside.sum() < len(coords)
    return box


def two_styles_mask(data: ExplorerData) -> np.ndarray:
    styles = list(data.value_counts("style").index[:2])
    mask = data.filter_mask({"style": styles}, "")
    assert 0 < mask.sum() < len(mask)
    return mask


@pytest.mark.parametrize("attribute", ["style", "year"])
@pytest.mark.parametrize("view", ["whole", "zoomed"])
@pytest.mark.parametrize("filter_", ["none", "shown", "hidden"])
def test_dask_map_aggregates_equal_in_memory_map(both_ways, attribute, view, filter_):
    in_memory, through_dask = both_ways
    assert through_dask.kinds[attribute] == ("numeric" if attribute == "year" else "categorical")
    x_range, y_range = WHOLE if view == "whole" else zoomed(in_memory)
    mask = None if filter_ == "none" else two_styles_mask(in_memory)
    request = MapRequest(str(SPACE), METHOD, attribute, x_range, y_range, 200, 150,
                         mask=mask, hide_filtered=filter_ == "hidden", glyph_limit=0)

    expected = map_aggregate(in_memory, request)
    found = map_aggregate(through_dask, request)

    assert set(found.data_vars) == set(expected.data_vars)
    assert expected["count"].sum() > 5
    for name in expected.data_vars:  # counts, colour sums, mean values (NaN where no value)
        np.testing.assert_allclose(found[name].to_numpy(), expected[name].to_numpy(),
                                   rtol=1e-6, equal_nan=True, err_msg=name)


@pytest.mark.parametrize("attribute", ["style", "year"])
def test_dask_map_renders_the_same_image_as_the_in_memory_map(both_ways, attribute):
    in_memory, through_dask = both_ways
    request = MapRequest(str(SPACE), METHOD, attribute, *WHOLE, 200, 150,
                         mask=two_styles_mask(in_memory), glyph_limit=0)
    selected = MapRequest(str(SPACE), METHOD, attribute, *zoomed(in_memory), 200, 150,
                          selection=np.arange(0, 66, 4), glyph_limit=0)
    for each in (request, selected):
        expected = render_map(in_memory, each).get(0).data
        found = render_map(through_dask, each).get(0).data
        assert (expected[..., 3] > 0).any()
        np.testing.assert_array_equal(found, expected)


def test_the_workers_hold_every_point_once_in_the_blocked_order(both_ways, blocked_store):
    in_memory, through_dask = both_ways
    colouring = Colouring.of(in_memory.colour_values("style", TOP_CATEGORIES), numeric=False)
    request = MapRequest(str(SPACE), METHOD, "style", *WHOLE, 200, 150)
    places, colours = held(through_dask, request, colouring)
    assert len(places) == len(colours) == 7
    held_points = pd.DataFrame({"x": np.concatenate([x for x, _ in places]),
                                "y": np.concatenate([y for _, y in places]),
                                **{c: np.concatenate([block[c] for block in colours])
                                   for c in "rgb"}})
    order = Store.open(blocked_store).load_x_sorted(SPACE, METHOD)["row"]
    assert sorted(order) == list(range(66))
    expected = colouring.take(order).columns(*in_memory.coords(SPACE, METHOD)[order].T)
    np.testing.assert_array_equal(held_points.to_numpy(), expected.to_numpy())


def test_a_zoomed_view_reads_the_blocks_it_overlaps_in_its_range_of_y(both_ways):
    in_memory, through_dask = both_ways
    colouring = Colouring.of(in_memory.colour_values("style", TOP_CATEGORIES), numeric=False)
    x_range, y_range = zoomed(in_memory)
    request = MapRequest(str(SPACE), METHOD, "style", x_range, y_range, 200, 150)
    places, _ = held(through_dask, request, colouring)
    source = dask_points.source_of(through_dask, request)
    viewed = dask_points.viewed_blocks(source, request, len(through_dask))
    read = np.concatenate([np.column_stack(places[block])[rows] for block, rows in viewed])
    coords = in_memory.coords(SPACE, METHOD)
    inside = coords[(coords[:, 0] >= x_range[0]) & (coords[:, 0] <= x_range[1])
                    & (coords[:, 1] >= y_range[0]) & (coords[:, 1] <= y_range[1])]
    assert len(inside) < len(read) < len(coords)
    assert set(map(tuple, inside.tolist())) <= set(map(tuple, read.tolist()))
    hair = 1e-4  # the search's margin, so that rounding leaves no point of the view out
    assert ((read[:, 1] >= y_range[0] - hair) & (read[:, 1] <= y_range[1] + hair)).all()


@pytest.mark.parametrize("attribute", ["style", "year"])
def test_a_view_of_no_points_is_an_empty_aggregate_like_the_in_memory_one(both_ways, attribute):
    in_memory, through_dask = both_ways
    far = (5.0, 6.0)  # the map lies within [-1, 1]
    request = MapRequest(str(SPACE), METHOD, attribute, far, far, 200, 150,
                         mask=two_styles_mask(in_memory), glyph_limit=0)
    source = dask_points.source_of(through_dask, request)
    assert dask_points.viewed_blocks(source, request, len(through_dask)) == []
    expected, found = map_aggregate(in_memory, request), map_aggregate(through_dask, request)
    assert set(found.data_vars) == set(expected.data_vars) and int(found["count"].sum()) == 0
    for name in expected.data_vars:
        np.testing.assert_array_equal(found[name].to_numpy(), expected[name].to_numpy())


def held(data: ExplorerData, request: MapRequest, colouring: Colouring
         ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[dict[str, np.ndarray]]]:
    """The blocks the workers hold for the request's map: map coordinates, colour columns."""
    dask_client = dask_points.client(data.dask)
    source = dask_points.source_of(data, request)
    held_blocks = dask_points.held_blocks(data, source, request, colouring)
    return dask_client.gather(held_blocks.places), dask_client.gather(held_blocks.colours)


@pytest.mark.parametrize("copy", ["missing", "of an older map"])
def test_a_map_without_its_current_blocked_copy_is_read_whole_to_the_same_image(
        both_ways, blocked_store, copy):
    """A store whose project stage came before the copies, or whose map was remade without
    its copy (a run killed in between): the projection itself is read, every point, and the
    image is the one the in-memory path draws."""
    in_memory, through_dask = both_ways
    request = MapRequest(str(SPACE), METHOD, "style", *zoomed(in_memory), 200, 150,
                         mask=two_styles_mask(in_memory), glyph_limit=0)
    sidecar = sidecar_path(Store.open(blocked_store).x_sorted_path(SPACE, METHOD))
    kept = sidecar.read_text()
    if copy == "missing":
        sidecar.unlink()
    else:
        meta = json.loads(kept)
        meta["recipe"]["projection_written"] = "2020-01-01T00:00:00+00:00"
        sidecar.write_text(json.dumps(meta))
    try:
        source = dask_points.source_of(through_dask, request)
        assert not source.sorted
        assert len(dask_points.viewed_blocks(source, request, len(through_dask))) == 1
        np.testing.assert_array_equal(render_map(through_dask, request).get(0).data,
                                      render_map(in_memory, request).get(0).data)
    finally:
        sidecar.write_text(kept)


def test_dask_is_chosen_by_option_or_environment(monkeypatch):
    monkeypatch.delenv("FSE_DASK", raising=False)
    assert dask_scheduler(["--store", "somewhere"]) is None
    assert dask_scheduler(["--store", "somewhere", "--dask"]) == "local"
    assert dask_scheduler(["--dask", "tcp://10.0.0.5:8786"]) == "tcp://10.0.0.5:8786"
    monkeypatch.setenv("FSE_DASK", "tcp://scheduler:8786")
    assert dask_scheduler([]) == "tcp://scheduler:8786"
    assert dask_scheduler(["--dask"]) == "local"


def test_the_local_cluster_listens_on_this_machine_only():
    """`--dask` alone starts a cluster whose scheduler runs any code it is sent: none of its
    processes may listen on an address other machines reach."""
    code = ("import os, psutil; from explorer import dask_points; "
            "local = dask_points.client('local'); "
            "pids = [os.getpid(), *local.run(os.getpid).values()]; "
            "print(sorted({c.laddr.ip for pid in pids "
            "for c in psutil.Process(pid).net_connections('inet') "
            "if c.status == psutil.CONN_LISTEN}))")
    root = Path(dask_points.__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    listening = subprocess.run([sys.executable, "-c", code], cwd=root, env=env,
                               capture_output=True, text=True, timeout=120).stdout
    assert listening.strip() == "['127.0.0.1']", listening


def test_the_app_starts_without_importing_distributed():
    code = ("import sys; import explorer.page, explorer.scatter, explorer.warmup; "
            "sys.exit('distributed' in sys.modules)")
    root = Path(dask_points.__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    assert subprocess.run([sys.executable, "-c", code], cwd=root, env=env).returncode == 0
