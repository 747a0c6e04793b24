"""The report page of one dataset's handoffs: per form its rows, tokens, packing, bytes per
token and checks (read from the check reports), so a user sees them before training.

    python -m distill_data.handoff.report WORK/validate/handoff/<dataset>/*.json --out page.html
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..report_items import _page, _table
from ..schema import SPLITS
from ..writer import write_text


def handoff_html(reports: list[dict]) -> str:
    dataset = reports[0]["dataset"] if reports else "?"
    rows = []
    for r in reports:
        packing = r.get("packing") or {}
        filled = ", ".join(f"{s} {packing[s]['efficiency']:.4f}" for s in SPLITS
                           if packing.get(s) and packing[s].get("efficiency") is not None) or "-"
        failed = [name for name, entry in r["checks"].items() if not entry["ok"]]
        rows.append([r["form"], *(r["rows"][s] for s in SPLITS), sum(r["tokens"].values()), filled,
                     r["bytes_per_token"] if r["bytes_per_token"] is not None else "-",
                     "OK" if r["ok"] else "FAILED: " + ", ".join(failed), str(Path(r["directory"]))])
    body = [_table(["form", "train rows", "validation rows", "tokens", "slots filled", "bytes/token", "checks",
                    "folder"], rows)]
    for r in reports:
        for name, entry in r["checks"].items():
            if not entry["ok"]:
                body.append(f"<p><b>{r['form']} {name}</b>: " + "; ".join(entry["failures"]) + "</p>")
    return _page(f"{dataset}: handoffs", body)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+", type=Path, help="check reports (python -m distill_data.handoff check --report)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    reports = [json.loads(path.read_text(encoding="utf-8")) for path in args.reports]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, handoff_html(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
