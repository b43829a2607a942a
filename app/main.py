"""`panel serve app [--args --store DIR]`: serve the explorer for a store.

The store is `--store DIR`, else the FSE_STORE environment variable, else the sample store
built by `make store`.
"""

import sys

from explorer.location import store_root
from explorer.page import explorer_page

explorer_page(store_root(sys.argv[1:])).servable()
