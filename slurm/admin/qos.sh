#!/usr/bin/env bash
# Create/update the QOS levels deeptrade's cluster profiles use. Needs accounting (slurmdbd) and
# an admin: run once per cluster, then again after editing. Safe to rerun (modify, not add).
#
#   research  sweeps and training arrays: preemptible (requeued) by `live`, fair-share limits
#   live      the long-running live-trading job: highest priority, never preempted
#   debug     quick interactive checks: small and short, high priority
#
# slurm.conf must have: PreemptType=preempt/qos, PreemptMode=REQUEUE,
#   AccountingStorageEnforce=associations,limits,qos, PriorityWeightQOS > 0.
# Usage: slurm/admin/qos.sh [--dry-run] [ACCOUNT]   (ACCOUNT: grant the QOS to it, default none)
set -euo pipefail

dry=0
if [ "${1:-}" = --dry-run ]; then dry=1; shift; fi
account="${1:-}"

run() {
    if ((dry)); then printf '%s\n' "$*"; else "$@"; fi
}
ensure_qos() { # name, then settings
    local name="$1"
    shift
    if ((dry)) || ! sacctmgr -n -P show qos "$name" format=Name | grep -qx "$name"; then
        run sacctmgr -i add qos "$name"
    fi
    run sacctmgr -i modify qos "$name" set "$@"
}

# live: nothing preempts it, it preempts research; one running job per user is all it needs.
ensure_qos live Priority=1000 PreemptMode=OFF MaxJobsPerUser=1 MaxWall=-1 \
    Flags=DenyOnLimit
# research: preemptible, requeued (our long jobs are Checkpointable and resume), capped per user
# so one sweep cannot take every GPU; GraceTime leaves time to write a checkpoint.
ensure_qos research Priority=10 PreemptMode=REQUEUE GraceTime=120 MaxWall=2-00:00:00 \
    MaxTRESPerUser=gres/gpu=32 MaxSubmitJobsPerUser=5000
# debug: small and short, jumps the research queue but preempts nothing.
ensure_qos debug Priority=500 PreemptMode=OFF MaxWall=00:30:00 MaxTRESPerUser=gres/gpu=2 \
    MaxJobsPerUser=2 MaxSubmitJobsPerUser=4 Flags=DenyOnLimit

run sacctmgr -i modify qos live set Preempt=research

if [ -n "$account" ]; then
    run sacctmgr -i modify account "$account" set QOS=research,live,debug DefaultQOS=research
fi
((dry)) || sacctmgr show qos format=Name,Priority,Preempt,PreemptMode,GraceTime,MaxWall,MaxTRESPU%30,MaxJobsPU
