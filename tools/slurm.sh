#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the tests of `mtlbench run --executor slurm` (and for trying
# it out). Idempotent: installs Debian's slurm-wlm and munge if they are missing (as root), writes a munge key
# and a slurm.conf for one node named after this host, and starts munged, slurmctld and slurmd unless they run.
#   bash tools/slurm.sh start     start the cluster (default)
#   bash tools/slurm.sh stop      stop what this script started (it records the daemons it started)
#   bash tools/slurm.sh status    sinfo
set -euo pipefail
action=${1:-start}
state=/var/lib/mtlbench-slurm  # what this script started
conf=/etc/slurm/slurm.conf

need_root() { [ "$(id -u)" = 0 ] || { echo "slurm.sh: run as root (it installs packages and starts daemons)" >&2; exit 2; }; }

install() {
  if command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v munged >/dev/null; then return; fi
  need_root
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

configure() {
  need_root
  mkdir -p "$state" /etc/munge /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  chmod 700 /etc/munge
  local host cpus memory
  host=$(hostname)
  cpus=$(nproc)
  memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
  cat > "$conf" <<EOF
# written by mtlbench tools/slurm.sh: a one-node cluster for tests
ClusterName=mtlbench
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
MinJobAge=3600
JobRequeue=1
SchedulerParameters=defer_batch
SchedulerTimeSlice=5
MessageTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}

running() { pgrep -x "$1" >/dev/null; }

start_daemon() {  # name, command...
  local name=$1; shift
  if running "$name"; then return; fi
  "$@"
  touch "$state/started-$name"
}

start() {
  install
  configure
  start_daemon munged runuser -u munge -- /usr/sbin/munged
  start_daemon slurmctld /usr/sbin/slurmctld
  start_daemon slurmd /usr/sbin/slurmd
  for _ in $(seq 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "slurm.sh: one-node cluster up ($(hostname), $(nproc) CPUs)"; return; fi
    scontrol update nodename="$(hostname)" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  echo "slurm.sh: the node did not come up; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
  sinfo >&2 || true
  exit 1
}

stop() {
  for name in slurmd slurmctld munged; do
    if [ -e "$state/started-$name" ]; then
      pkill -x "$name" || true
      rm -f "$state/started-$name"
    fi
  done
}

case "$action" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: bash tools/slurm.sh [start|stop|status]" >&2; exit 2 ;;
esac
