#!/usr/bin/env bash
# Create .venv (if missing) and install incidentctl with its test tools; install Debian's Prometheus and
# Alertmanager when their binaries are missing (tests and `incidentctl dev --with-prometheus` run them as local
# processes), and Debian's chromium (tests/test_web_browser.py drives the web page in it, headless). Safe to run
# again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

install_debian_packages() {
  local missing=()
  command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
  command -v chromium >/dev/null || missing+=(chromium)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: ${missing[*]} not installed and cannot apt-get here (need root on Debian/Ubuntu);" \
         "the tests that run the real alert pipeline or a real browser will be skipped" >&2
    return 0
  fi
  # The packages' own services would start on install and hold 9090/9093; we run our own processes with
  # explicit ports and data dirs, so forbid service starts during the install (invoke-rc.d and
  # deb-systemd-invoke both ask policy-rc.d) unless the machine already has a policy of its own.
  local own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    own_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$own_policy"
    chmod +x "$own_policy"
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$own_policy" ]; then
    rm -f "$own_policy"
    trap - EXIT
  fi
  # A machine with systemd enables the units anyway: keep them from starting at the next boot as well.
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl disable --now prometheus prometheus-alertmanager >/dev/null 2>&1 || true
  fi
}

install_debian_packages
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
