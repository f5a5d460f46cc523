// GraphQL Code Generator: TypeScript types for the operations in
// src/operations.graphql, checked against hookline's committed schema.
// `npm run codegen` writes src/generated/graphql.ts; `npm run check` fails
// when an operation does not validate or the generated file is stale.
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: '../../schema.graphql',
  documents: ['src/operations.graphql'],
  // Fail on a missing document or an invalid operation; never skip silently.
  ignoreNoDocuments: false,
  noSilentErrors: true,
  generates: {
    'src/generated/graphql.ts': {
      // operation-map.cjs adds the Operations and Subscriptions maps.
      plugins: ['typescript', 'typescript-operations', './operation-map.cjs'],
      config: {
        // Only what the operations use (their variables, enums and results).
        onlyOperationTypes: true,
        // Enums as string unions: the generated file is types only.
        enumsAsTypes: true,
        useTypeImports: true,
        // Unknown scalars are an error rather than `any`.
        strictScalars: true,
        scalars: {
          DateTime: { input: 'string', output: 'string' },
          JSON: { input: 'unknown', output: 'unknown' },
        },
        skipTypename: true,
        // Result fields are always present (possibly null), never optional.
        avoidOptionals: { field: true, inputValue: false, object: false, defaultValue: false },
      },
    },
  },
};

export default config;
