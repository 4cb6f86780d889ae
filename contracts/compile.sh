#!/usr/bin/env bash
# Recompile the test contracts into contracts/build/ (requires Node.js >= 18 and npm).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
node compile.js
