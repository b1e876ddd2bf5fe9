#!/usr/bin/env bash
# GPU-hours per user from Slurm accounting (needs slurmdbd).
#
#   slurm/admin/gpu_hours.sh [-S START] [-E END] [-p PARTITION] [-i SACCT_FILE]
#
# START/END as sacct takes them (default: the 1st of this month .. now). GPU-hours of a job =
# allocated GPUs (AllocTRES gres/gpu=N) x elapsed wall time; jobs without GPUs are left out.
# -i reads saved `sacct -n -P -X -o User,JobID,Partition,ElapsedRaw,AllocTRES` output instead
# of calling sacct (for offline reports). Output: user, jobs, gpu_hours, descending; then TOTAL.
set -euo pipefail

start="$(date +%Y-%m-01)"
end=now
partition=""
input=""
while getopts "S:E:p:i:h" opt; do
    case "$opt" in
        S) start="$OPTARG" ;;
        E) end="$OPTARG" ;;
        p) partition="$OPTARG" ;;
        i) input="$OPTARG" ;;
        *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done

fields=User,JobID,Partition,ElapsedRaw,AllocTRES
if [ -n "$input" ]; then
    data="$(cat "$input")"
else
    # -X: one line per allocation (array tasks count separately; steps would double count).
    args=(-a -n -P -X -S "$start" -E "$end" -o "$fields")
    [ -n "$partition" ] && args+=(-r "$partition")
    data="$(sacct "${args[@]}")"
fi

printf '%s\n' "$data" | awk -F'|' -v part="$partition" '
    NF < 5 || $1 == "" { next }
    part != "" && $3 != part { next }
    {
        gpus = 0
        n = split($5, tres, ",")
        for (i = 1; i <= n; i++) {
            # Only the untyped total: "gres/gpu:v100=4" repeats what "gres/gpu=4" counts.
            if (tres[i] ~ /^gres\/gpu=/) { sub(/^gres\/gpu=/, "", tres[i]); gpus = tres[i] + 0 }
        }
        if (gpus == 0) next
        hours[$1] += gpus * ($4 + 0) / 3600
        jobs[$1] += 1
    }
    END {
        printf "%-16s %8s %12s\n", "user", "jobs", "gpu_hours"
        for (u in hours) { printf "%-16s %8d %12.2f\n", u, jobs[u], hours[u] | "sort -k3,3nr"; total += hours[u]; njobs += jobs[u] }
        close("sort -k3,3nr")
        printf "%-16s %8d %12.2f\n", "TOTAL", njobs, total
    }'
