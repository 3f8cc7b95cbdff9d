# Sourced by the run_mc*.sh scripts of this folder (run from the repository root): the steps they share to run one
# Monte Carlo chain resumably. A chain is done when its mc_summary.json says at least the steps asked for (a chain
# extended later by another script counts as done for the shorter request, and is not touched); an unfinished one
# resumes from its checkpoint, with its gzipped log and samples unpacked first and packed again afterwards.
PY=${PY:-.venv/bin/python}
HQC=${HQC:-.venv/bin/hqc-qiskit}
D=runs/density/npt
chain_done() {   # out steps
    [ -f "$1/mc_summary.json" ] && "$PY" -c 'import json, sys
sys.exit(json.load(open(sys.argv[1]))["steps"] < int(sys.argv[2]))' "$1/mc_summary.json" "$2"
}
unpack() { for f in "$1/mc_log.csv.gz" "$1/mc_traj.extxyz.gz"; do if [ -f "$f" ]; then gunzip -f "$f"; fi; done; }
pack() { gzip -f "$1/mc_log.csv" "$1/mc_traj.extxyz"; }
resumable() {   # steps out, then the command that runs the chain to steps or resumes it (one thread; appends to out.log)
    local steps=$1 out=$2; shift 2
    if chain_done "$out" "$steps"; then echo "$out: done"; return; fi
    unpack "$out"
    OMP_NUM_THREADS=1 "$@" >> "$out.log" 2>&1
    pack "$out"
}
synthetic_chain() {   # steps out, then the arguments of synthetic_noise_mc.py (it resumes from a checkpoint itself)
    resumable "$1" "$2" "$PY" $D/synthetic_noise_mc.py "${@:3}" --steps "$1" --out "$2"
}
hqc_chain() {   # steps out, then the arguments of hqc-qiskit mc before --steps (--resume when a checkpoint is there)
    resumable "$1" "$2" "$HQC" mc "${@:3}" --steps "$1" --sample-every 200 --checkpoint-every 500 --out "$2" \
        --no-progress $( [ -f "$2/mc_checkpoint.json" ] && echo --resume )
}
