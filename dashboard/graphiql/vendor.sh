#!/usr/bin/env bash
# Refreshes vendor/ from the versions pinned in package-lock.json: GraphiQL's
# prebuilt bundle and stylesheet, React and ReactDOM (the UMD builds GraphiQL 3
# runs on) and graphql-ws (subscriptions over graphql-transport-ws). hookline
# embeds vendor/ at compile time, so GraphiQL loads with no network access.
# Run it after changing a version in package.json, then commit vendor/.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
m=node_modules
rm -rf vendor && mkdir vendor
# Source maps are not shipped: drop the comments that point at them.
strip_map() { sed -e '/^\/\/# sourceMappingURL=/d' -e 's|/\*# sourceMappingURL=[^*]*\*/||' "$1" > "vendor/$2"; }
strip_map "$m/graphiql/graphiql.min.js" graphiql.min.js
strip_map "$m/graphiql/graphiql.min.css" graphiql.min.css
strip_map "$m/react/umd/react.production.min.js" react.production.min.js
strip_map "$m/react-dom/umd/react-dom.production.min.js" react-dom.production.min.js
strip_map "$m/graphql-ws/umd/graphql-ws.min.js" graphql-ws.min.js
{
  echo "# Third-party files in this directory"
  echo
  echo "Copied unchanged (source-map comments removed) by ../vendor.sh from the npm"
  echo "packages below; each keeps its own licence, reproduced here."
  for p in graphiql react react-dom graphql-ws graphql; do
    v=$(node -p "require('./$m/$p/package.json').version")
    printf '\n## %s %s\n\n```\n' "$p" "$v"
    cat "$m/$p/LICENSE"*
    printf '```\n'
  done
} > vendor/LICENSES.md
rm -rf node_modules
ls -l vendor
