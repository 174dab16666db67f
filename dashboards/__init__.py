"""netmon's Grafana dashboards as code: typed builders in, reviewed JSON out.

Each module builds one dashboard with grafana-foundation-sdk; `dashboards.build` writes them
to `JSON_DIR`, and that JSON is what is committed, provisioned and pushed. Nothing here talks
to Grafana or Prometheus.
"""

from pathlib import Path

JSON_DIR = Path(__file__).parent / "json"
