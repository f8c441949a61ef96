#!/usr/bin/env bash
# Assembles the ignored folder .gpu/ that bench/cuda/lease.sh needs on a lent GPU machine (no
# Node.js, no network there): node.xz (this machine's node), node_modules without what only
# builds or type-checks (typescript, @types, cmake-js's tar), zlib's headers (Debian's zlib1g-dev, unpacked) and the guided_diffusion
# package of a checkout of openai/guided-diffusion (--repo PATH or GD_OPENAI_REPO; optional: the
# lease part `openai` needs it). Builds dist/ too. Then carry [".gpu", "dist"] (64 MiB in all).
#   bash bench/cuda/pack.sh [--repo PATH]
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=${GD_OPENAI_REPO:-}
[ "${1:-}" = --repo ] && REPO=$2
rm -rf .gpu && mkdir -p .gpu/zlib
xz -T0 -6 -c "$(command -v node)" > .gpu/node.xz
npx tsc -p tsconfig.json
tar -C . --exclude=node_modules/typescript --exclude=node_modules/@types --exclude=node_modules/tar --exclude='node_modules/.cache' -cf - node_modules | tar -C .gpu -xf -
(cd /tmp && rm -f zlib1g-dev_*.deb && apt-get download zlib1g-dev >/dev/null) && dpkg -x /tmp/zlib1g-dev_*.deb .gpu/zlib
if [ -n "$REPO" ]; then
  [ -f "$REPO/guided_diffusion/unet.py" ] || { echo "pack.sh: $REPO is not a checkout of openai/guided-diffusion" >&2; exit 1; }
  mkdir -p .gpu/gd-openai && cp -r "$REPO/guided_diffusion" .gpu/gd-openai/
  git -C "$REPO" rev-parse HEAD > .gpu/gd-openai/COMMIT 2>/dev/null || true
fi
echo "carry: .gpu and dist, $(du -sc --apparent-size -m .gpu dist | tail -1 | cut -f1) MiB (the limit: 64)"
