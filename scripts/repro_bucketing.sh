#!/usr/bin/env bash
# Bucketing (Karimireddy, He and Jaggi, ICLR 2022), exp3 of the reference code, in cohort
# (configs/repro/bucketing/exp3.yaml): 25 workers, 5 Byzantine with iid data of their own, the 20
# honest ones holding the label-sorted training set; cnn_mnist, batch 32, lr 0.01, 600 iterations.
# Grid: rule x bucketing s in {0, 2} x attack x worker momentum in {0, 0.9} x seed.
#   MODE=quick  rules cm and gm (RFA) against IPM, s = 0 and 2, momentum 0.9, seed 0: 4 runs,
#               about 25 minutes on 2 cores
#   MODE=full   rules mean, cm, krum, gm, cclip; attacks none, signflip (BF), labelflip (LF),
#               mimic, ipm, alie; momentum 0 and 0.9; seeds 0 1 2: 243 runs of 330-400 s each,
#               about 24 hours on 2 cores. Run it in parts: AGGS, ATTACKS, BETAS, BUCKETS and
#               SEEDS (space-separated) narrow the grid; finished runs are skipped.
#   MODEL=mlp   the same grid with the MLP (784-64-10) instead of cnn_mnist (~25 s a run)
# Writes results/repro/bucketing/{runs,table,accuracy}_MODEL.{csv,md,png} from every run in $H5
# (whichever MODE or narrowed grid made it), beside the reference code's published MNIST numbers
# (reference_exp3.csv, scripts/repro_bucketing_reference.py). TABLE_ONLY=1 redraws.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
COHORT=${COHORT:-build/cohort}
MODE=${MODE:-quick}
MODEL=${MODEL:-cnn_mnist}
NP=${NP:-2}
H5=${H5:-/tmp/cohort_bucketing/$MODEL}
OUT=results/repro/bucketing
CFG=configs/repro/bucketing/exp3.yaml
mkdir -p "$H5" "$OUT"
case $MODE in
  quick) AGGS=${AGGS:-"cm gm"}; ATTACKS=${ATTACKS:-"ipm"}; BETAS=${BETAS:-"0.9"}; SEEDS=${SEEDS:-"0"} ;;
  full) AGGS=${AGGS:-"mean cm krum gm cclip"}; ATTACKS=${ATTACKS:-"none signflip labelflip mimic ipm alie"}
        BETAS=${BETAS:-"0 0.9"}; SEEDS=${SEEDS:-"0 1 2"} ;;
  *) echo "MODE must be quick or full" >&2; exit 2 ;;
esac
BUCKETS=${BUCKETS:-"0 2"}
# The reference's rules: Krum with f = 5 (m = 1), RFA = smoothed Weiszfeld with T = 8 from 0,
# CClip tau = 10 with L = 3 iterations from the previous aggregate, CM the coordinate median.
declare -A AGG=(
  [mean]="aggregator.name=mean" [cm]="aggregator.name=cm" [krum]="aggregator.name=krum aggregator.f=5"
  [gm]="aggregator.name=gm aggregator.iters=8 aggregator.nu=0.1 aggregator.init=zero"
  [cclip]="aggregator.name=cclip aggregator.tau=10 aggregator.iters=3"
)
# The reference's attacks: IPM eps 0.1, ALIE with z from n and f, bit flipping = -gradient,
# label flipping y -> 9 - y, mimic of the honest worker the first round's spread picks (target
# variance, the reference's MimicVariantAttacker with one warm-up iteration); 'none' keeps the 20
# honest workers alone.
declare -A ATK=(
  [none]="attack.name=none clients.num_clients=20 clients.per_round=20"
  [signflip]="attack.name=signflip attack.count=5" [labelflip]="attack.name=labelflip attack.count=5"
  [mimic]="attack.name=mimic attack.count=5 attack.target=variance" [ipm]="attack.name=ipm attack.count=5 attack.eps=0.1"
  [alie]="attack.name=alie attack.count=5 attack.z=auto"
)
done_ok() {
  [ -f "$1" ] && /usr/bin/python3 -c "import h5py,sys; sys.exit(h5py.File(sys.argv[1],'r').attrs['status'] not in ('completed','diverged'))" "$1" 2>/dev/null
}
if [ -z "${TABLE_ONLY:-}" ]; then
  start=$(date +%s)
  for seed in $SEEDS; do
    for beta in $BETAS; do
      for atk in $ATTACKS; do
        for agg in $AGGS; do
          for s in $BUCKETS; do
            # Without an attack only the mean runs (as in the reference); the mean is not bucketed.
            if [ "$atk" = none ] && [ "$agg" != mean ]; then continue; fi
            if [ "$agg" = mean ] && [ "$atk" != none ]; then continue; fi
            if [ "$agg" = mean ] && [ "$s" != 0 ]; then continue; fi
            f="$H5/${agg}_${atk}_b${beta}_s${s}_seed${seed}.h5"
            done_ok "$f" && continue
            echo "[bucketing] $(basename "$f" .h5) ($(( ($(date +%s) - start) / 60 )) min so far)"
            # shellcheck disable=SC2086
            mpirun -np "$NP" "$COHORT" run --overwrite "$CFG" model.name="$MODEL" seed="$seed" \
              algorithm.client_momentum="$beta" aggregator.bucketing="$s" ${AGG[$agg]} ${ATK[$atk]} \
              output.path="$f" > "${f%.h5}.log" 2>&1 || true
          done
        done
      done
    done
  done
fi
/usr/bin/python3 scripts/repro_bucketing_report.py "$H5" "$OUT" "$MODEL"
