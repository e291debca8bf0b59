#!/bin/sh
# Installs the real S3 clients the tests under tests/clients drive:
# boto3 (with awscrt, for CRC64NVME checksums), the aws CLI, mlflow-skinny, moto's S3 server (a reference server
# for checking the harness itself) and pytest in a venv under target/
# (git-ignored), and rclone from apt when it is missing. Needs network on
# the first run; a second run only checks that everything is there.
set -eu
cd "$(dirname "$0")/.."

VENV="${CLIENTS_VENV:-target/clients-venv}"
PY="${PYTHON:-python3}"
# The packages and the import names that prove they are installed.
PKGS="boto3 awscrt awscli mlflow-skinny moto[server] pytest"
MODS="boto3 awscrt awscli mlflow moto pytest"

if [ ! -x "$VENV/bin/python" ]; then
    echo "clients-setup: creating venv $VENV"
    "$PY" -m venv "$VENV"
fi
# find_spec only looks the modules up (importing mlflow takes seconds).
if ! "$VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))" $MODS 2>/dev/null \
   || [ ! -x "$VENV/bin/aws" ] || [ ! -x "$VENV/bin/moto_server" ]; then
    echo "clients-setup: installing $PKGS"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    "$VENV/bin/python" -m pip install --quiet $PKGS
fi

if ! command -v rclone >/dev/null 2>&1; then
    echo "clients-setup: installing rclone"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rclone
fi
echo "clients-setup: ready ($VENV, $(command -v rclone))"
