#!/usr/bin/env bash
# Installs the pinned tools, regenerates the types from ../../schema.graphql
# and src/operations.graphql (failing on any invalid operation or a stale
# src/generated/graphql.ts), and type-checks the client. Exit 0 = all good.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent check
echo "typescript-client: operations valid against schema.graphql, generated types up to date, tsc clean"
