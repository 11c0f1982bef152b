"""Markdown table of scripts/bench_gossip.sh: per-phase round times, cross-rank bytes, memory."""
import json
import platform
import subprocess
import sys

import h5py
import numpy as np

h5, cohort = sys.argv[1], sys.argv[2]
N, D = 1024, 100_000
HEADER = 4 + 8  # node id and message length in front of each forwarded message


def graph(name):
    adj = [set() for _ in range(N)]
    if name == "ring":
        for i in range(N):
            adj[i] |= {(i + 1) % N, (i - 1) % N}
    else:  # exponential: i ~ i +- 2^j mod n
        hop = 1
        while hop <= N - 1:
            for i in range(N):
                adj[i] |= {(i + hop) % N, (i - hop) % N}
            hop <<= 1
    for i in range(N):
        adj[i].discard(i)
    return adj


def cross_bytes(name, ranks):
    """Bytes each rank sends per round: every node's message goes once to each other rank that
    holds one of its neighbours (Note [Decentralized rounds]); blocks are contiguous."""
    owner = lambda i: min(r for r in range(ranks) if i < N * (r + 1) // ranks)
    adj = graph(name)
    out = [0] * ranks
    for i in range(N):
        for r in {owner(j) for j in adj[i]} - {owner(i)}:
            out[owner(i)] += 4 * D + HEADER
    return out, sum(len(a) for a in adj) // 2


def cpu():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    isa = [f for f in ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"] if f in flags]
    return model, isa


model, isa = cpu()
print("# One gossip round at scale: 1,024 nodes x 100,000 parameters (D-SGD)\n")
print("Regenerate: `bash scripts/bench_gossip.sh` (config `configs/bench_gossip.yaml`: quadratic "
      "clients of dimension 100,000, one local gradient step per node and one gossip step a round, "
      "metropolis weights, 6 rounds; each run is `mpirun --allow-run-as-root --oversubscribe -np P "
      "build/cohort run configs/bench_gossip.yaml topology.name=T`).\n")
print(f"CPU: {model}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} "
      f"cores visible (shared machine), ISA {', '.join(isa)}; model GEMM path of the runs as "
      "recorded in the results file. Times are the median over rounds 2–6 (round 1 includes "
      "first-touch allocation), each the slowest rank's: `compute` = the nodes' local step and "
      "message build (`time_local`), `MPI exchange` = packing, the neighbourhood exchange between "
      "ranks and unpacking (`time_comm`), `local gossip` = the mixing within the rank and the new "
      "models' installation (`time_aggregate`), `metrics` = the exact all-reduce of the average "
      "model x̄ and the consensus distance (`time_eval`).\n")
print("| topology | ranks | edges | s/round | compute s | local gossip s | MPI exchange s | metrics s | "
      "bits/node/round | MB sent per rank per round (other ranks) | messages crossing per rank | "
      "peak RSS MiB (max rank) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for topo in ["ring", "exponential"]:
    for np_ in [1, 2]:
        with h5py.File(f"{h5}/{topo}_np{np_}.h5", "r") as f:
            r = f["rounds"]
            med = lambda k: float(np.median(r[k][()][1:]))
            cb, edges = cross_bytes(topo, np_)
            gemm = f.attrs["model_gemm"]
            print(f"| {topo} | {np_} | {edges} | {med('time_round'):.3f} | {med('time_local_max'):.3f} | "
                  f"{med('time_aggregate_max'):.3f} | {med('time_comm_max'):.3f} | "
                  f"{med('time_eval_max'):.3f} | {r['bits_per_node'][0]:.0f} | "
                  f"{max(cb) / 1e6:.2f} | {max(cb) // (4 * D + HEADER)} | "
                  f"{float(f.attrs['peak_rss_mib_max']):.0f} |")
load = [open(f"{h5}/loadavg_{w}").read().split()[0] for w in ("before", "after")]
print(f"\nLoad average (1 min) of the machine before / after the runs: {load[0]} / {load[1]} "
      "(the 2 cores are shared: with a load above 2 the ranks of a 2-rank run compete with other "
      "processes, so its times are upper bounds and no speed-up from 1 to 2 ranks should be read "
      "from them; bytes and memory do not depend on the load).")
print("\nCross-rank traffic of an all-reduce of one model of the same size, for comparison: a "
      f"ring all-reduce of d float32 values sends 2 (P-1)/P x 4 d = {4 * D / 1e6:.2f} MB per rank at "
      f"P = 2; cohort's exact reduce plan sends 8-byte words plus block scales, about "
      f"{8 * D / 1e6:.2f} MB. Gossip on the ring sends the 2 boundary nodes' models "
      f"({2 * (4 * D + HEADER) / 1e6:.2f} MB), the same order; on the exponential graph every node "
      "has a neighbour on the other rank (i + 512), so all 512 models of a rank cross "
      f"({512 * (4 * D + HEADER) / 1e6:.1f} MB), 256x the exact all-reduce and 512x a float32 one.")
ex = json.load(open(f"{h5}/exchange.json"))
print("\n## All-reduce of the same model (d = 100,000 floats), 2 ranks\n")
print("`build/cohort bench exchange --size 1e5 --np 2 --repeats 20` (best of 20):\n")
print("```")
print(open(f"{h5}/exchange.log").read().strip())
print("```")
