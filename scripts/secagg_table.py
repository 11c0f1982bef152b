#!/usr/bin/python3
"""Tabulates and plots experiment 2 (scripts/experiment_secagg.sh): per run, the last round's
protocol bytes and compute seconds per client and for the server, against the plain exchange.

usage: secagg_table.py RUNS_DIR OUT_DIR  (writes table.md, table.csv and cost.png)
"""
import csv
import glob
import os
import re
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def last(r, name):
    return float(r[name][-1])


def main(runs, out):
    os.makedirs(out, exist_ok=True)
    rows = []
    for path in sorted(glob.glob(os.path.join(runs, "*.h5"))):
        name = os.path.basename(path)[:-3]
        m = re.fullmatch(r"(plain|secagg)_n(\d+)(?:_p([0-9.]+))?", name)
        if not m:
            continue
        with h5py.File(path, "r") as f:
            if f.attrs["status"] != "completed":
                continue
            r = f["rounds"]
            n = int(r["clients"][-1])
            d = int(f.attrs["num_params"])
            row = {"exchange": m.group(1), "clients": n, "dropout": float(m.group(3) or 0),
                   "params": d}
            if m.group(1) == "plain":
                up = last(r, "uplink_bits") / 8 / n
                row.update(survivors=n, aborted=0, client_sent=up, client_received=4 * d,
                           server_received=up * n, server_sent=4 * d * n,
                           client_seconds=0.0, server_seconds=last(r, "time_comm_max"),
                           keys=0.0, shares=0.0, masking=0.0)
            else:
                row.update(survivors=int(last(r, "secagg_survivors")),
                           aborted=int(last(r, "secagg_aborted")),
                           # the protocol's bytes plus the model the client downloads
                           client_sent=last(r, "secagg_client_bytes_sent"),
                           client_received=last(r, "secagg_client_bytes_received") + 4 * d,
                           server_received=last(r, "secagg_server_bytes_received"),
                           server_sent=last(r, "secagg_server_bytes_sent") + 4 * d * n,
                           keys=last(r, "time_secagg_keys"), shares=last(r, "time_secagg_shares"),
                           masking=last(r, "time_secagg_masking"),
                           server_seconds=last(r, "time_secagg_unmasking"))
                row["client_seconds"] = row["keys"] + row["shares"] + row["masking"]
            rows.append(row)
    rows.sort(key=lambda x: (x["clients"], x["exchange"] != "plain", x["dropout"]))
    fields = ["exchange", "clients", "dropout", "params", "survivors", "aborted", "client_sent",
              "client_received", "server_received", "server_sent", "keys", "shares", "masking",
              "client_seconds", "server_seconds"]
    with open(os.path.join(out, "table.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for x in rows:
            w.writerow({k: x[k] for k in fields})

    def kb(v):
        return f"{v / 1000:.1f}"

    lines = ["| exchange | n | dropout | survivors | client sent kB | client recv kB | "
             "server recv MB | server sent MB | client s (keys / shares / masking) | server s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for x in rows:
        phases = ("—" if x["exchange"] == "plain" else
                  f"{x['client_seconds']:.4f} ({x['keys']:.4f} / {x['shares']:.4f} / "
                  f"{x['masking']:.4f})")
        lines.append(f"| {x['exchange']} | {x['clients']} | {x['dropout']:g} | "
                     f"{x['survivors']}{' (aborted)' if x['aborted'] else ''} | "
                     f"{kb(x['client_sent'])} | {kb(x['client_received'])} | "
                     f"{x['server_received'] / 1e6:.2f} | {x['server_sent'] / 1e6:.2f} | {phases} | "
                     f"{x['server_seconds']:.3g} |")
    with open(os.path.join(out, "table.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    styles = {0.0: "o-", 0.1: "s--", 0.3: "^:"}
    plain = [x for x in rows if x["exchange"] == "plain"]
    for p, style in styles.items():
        s = [x for x in rows if x["exchange"] == "secagg" and x["dropout"] == p]
        if not s:
            continue
        ns = [x["clients"] for x in s]
        ax[0].plot(ns, [x["client_sent"] + x["client_received"] for x in s], style,
                   label=f"secagg, dropout {p:g}")
        ax[1].plot(ns, [x["client_seconds"] for x in s], style, label=f"secagg, dropout {p:g}")
        ax[2].plot(ns, [x["server_seconds"] for x in s], style, label=f"secagg, dropout {p:g}")
    if plain:
        ns = [x["clients"] for x in plain]
        ax[0].plot(ns, [x["client_sent"] + x["client_received"] for x in plain], "k-",
                   label="plain exchange")
        ax[2].plot(ns, [x["server_seconds"] for x in plain], "k-", label="plain exchange")
    titles = ["bytes per client (sent + received)", "client compute s (keys + shares + masking)",
              "server s (unmasking; plain: finishing the sum)"]
    for a, t in zip(ax, titles):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("clients per round")
        a.set_title(t)
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "cost.png"), dpi=110)
    print(f"{len(rows)} runs -> {out}/table.md, table.csv, cost.png")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
