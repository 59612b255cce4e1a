#!/usr/bin/env bash
# Sets up a fresh machine and runs every check: the README's test command, and what CI runs.
# Installs the real servers the tests drive (Prometheus, Alertmanager, Redis, Chromium, Node.js) with
# apt-get when they are missing, builds .venv with the package and its test extras, then runs
# ruff, mypy and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

# The gateway's Node.js applications (openai + OpenLLMetry-JS, the Vercel AI SDK), from the npm registry.
(cd tests/gateway_apps/node && npm ci --no-audit --no-fund --loglevel=error)

.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
