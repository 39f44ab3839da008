# Shared by `up` and `down`: where the state folder is and how to tell our daemons by pid file.
# shellcheck shell=bash

QGAN_SLURM_STATE="${QGAN_SLURM_STATE:-/var/tmp/qgan-slurm}"
STATE="$QGAN_SLURM_STATE"
# Private ports, so a system SLURM or MariaDB on the default ports is never touched.
PORT_BASE="${QGAN_SLURM_PORT_BASE:-16800}"
DB_PORT=$((PORT_BASE + 6))
CTLD_PORT=$((PORT_BASE + 17))
SLURMD_PORT=$((PORT_BASE + 18))
DBD_PORT=$((PORT_BASE + 19))
CLUSTER="${QGAN_SLURM_CLUSTER:-qgandev}"
CONF="$STATE/etc/slurm.conf"
# Daemons in start order; `down` stops them in reverse.
DAEMONS=(munged mysqld slurmdbd slurmctld slurmd)

log() { echo "dev-cluster: $*" >&2; }
die() { echo "dev-cluster: error: $*" >&2; exit "${2:-1}"; }

# pid_of NAME: the pid recorded in NAME's pid file if that process is alive and is NAME.
pid_of() {
  local name=$1 file="$STATE/run/$1.pid" pid comm
  [[ -s $file ]] || return 1
  pid=$(tr -dc '0-9' <"$file")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
  case "$name:$comm" in
    munged:munged | slurmdbd:slurmdbd | slurmctld:slurmctld | slurmd:slurmd) ;;
    mysqld:mysqld | mysqld:mariadbd) ;;
    *) return 1 ;;
  esac
  echo "$pid"
}
