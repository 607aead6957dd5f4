#!/usr/bin/env bash
# Start or stop Pulsar with this directory as its configuration directory.
#
#   ./run.sh                 serve in the foreground (Ctrl-C stops)
#   ./run.sh --daemon        serve in the background (pid: pulsar.pid, log: pulsar.log)
#   ./run.sh --stop-daemon   stop the background server
#
# Before starting it sources $PULSAR_LOCAL_ENV (default: local_env.sh next to this script)
# when present, and activates $PULSAR_VIRTUALENV (default: .venv next to this script) when
# present.  Every argument is passed on to `pulsar` (see `pulsar --help`).
set -eo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
config_dir=${PULSAR_CONFIG_DIR:-$here}

local_env=${PULSAR_LOCAL_ENV:-$config_dir/local_env.sh}
if [ -f "$local_env" ]; then
  # shellcheck disable=SC1090
  . "$local_env"
fi

venv=${PULSAR_VIRTUALENV:-$here/.venv}
if [ -f "$venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  . "$venv/bin/activate"
fi

if ! command -v pulsar >/dev/null 2>&1; then
  echo "run.sh: no \`pulsar\` command; run \`make setup-venv\` (or activate the virtualenv holding pulsar-app)" >&2
  exit 127
fi
exec pulsar -c "$config_dir" "$@"
