#!/usr/bin/env bash
# Isobaric Monte Carlo (hqc-qiskit mc --ensemble npt) at 3000 K and 10 GPa, exact energies, from the same test frame
# as the NPT MD runs of run.sh, with the models that drove two of them: the ZBL fine-tune (zbl_p10) and the fine-tune
# with ZBL and pulled-pair DFT frames (closepair_p10). Two different samplers of the same ensemble of the same model
# must give the same density (docs/results.md "Isobaric Monte Carlo"). 100,000 steps each (first run for 40,000, then
# continued with --resume: the same chain), the first 2,000 adapting delta and the volume step; one thread each, side
# by side (about 20 minutes on the 2-core machine); a killed run continues with --resume (this script adds it and
# unpacks the log and the samples, gzipped afterwards: 12 MB, 2.3 MB packed).
set -euo pipefail
cd "$(dirname "$0")/../../.."
source runs/density/npt/chain_lib.sh
one() {   # run_dir name
    hqc_chain 100000 $D/$2_p10_mc "$1" --ensemble npt --pressure 10 --temperature 3000 --adapt-steps 2000 --delta 0.05
}
one runs/density/small_l2_hqc_cz_density_zbl zbl & pid=$!
one runs/density/small_l2_hqc_cz_density_closepair_dense_zbl closepair
wait $pid
