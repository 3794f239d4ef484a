"""Checks a provisioned Grafana dashboard: valid JSON, the fields Grafana needs, every panel on the
provisioned Prometheus datasource with a query, and every query naming metrics that exist (the
service's own, taken from src/metrics.rs, or RabbitMQ's and Prometheus' own)."""
import json
import pathlib
import re
import sys

path = pathlib.Path(sys.argv[1])
dashboard = json.loads(path.read_text())
errors = []
for key in ("uid", "title", "panels", "schemaVersion"):
    if key not in dashboard:
        errors.append(f"missing {key}")

root = path.resolve().parents[3]
source = (root / "src" / "metrics.rs").read_text()
ours = set(re.findall(r'"(shopify_sync_[a-z_]+)"', source))
known_prefixes = ("rabbitmq_", "process_", "up")
ids = set()
for panel in dashboard.get("panels", []):
    title = panel.get("title", "?")
    if panel.get("id") in ids:
        errors.append(f"{title}: duplicate id")
    ids.add(panel.get("id"))
    if panel.get("datasource", {}).get("uid") != "prometheus":
        errors.append(f"{title}: not on the provisioned datasource")
    targets = panel.get("targets") or []
    if not targets:
        errors.append(f"{title}: no query")
    for target in targets:
        expr = target.get("expr", "")
        names = set(re.findall(r"\b([a-z_][a-z0-9_]*)(?=\{|\[|\))", expr))
        metrics = {n for n in names if n.startswith(("shopify_sync_",) + known_prefixes)}
        if not metrics:
            errors.append(f"{title}: query names no metric: {expr}")
        for name in metrics:
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name.startswith("shopify_sync_") and base not in ours:
                errors.append(f"{title}: unknown metric {name}")

if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"SUCCESS: {len(dashboard['panels'])} panels")
