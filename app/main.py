"""`panel serve app [--args --store DIR --dask [SCHEDULER]]`: serve the explorer for a store.

The store is `--store DIR`, else the FSE_STORE environment variable, else the sample store
built by `make store`. With `--dask` (or FSE_DASK) the map is aggregated through Dask:
explorer/location.py.
"""

import sys

from explorer.location import dask_scheduler, store_root
from explorer.page import explorer_page

explorer_page(store_root(sys.argv[1:]), dask_scheduler(sys.argv[1:])).servable()
