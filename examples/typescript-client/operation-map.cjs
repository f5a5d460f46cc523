// A GraphQL Code Generator plugin (local, no dependencies): for every named
// operation in the documents it adds an entry to a map from the operation's
// name to [result type, variables type], using the names the
// typescript-operations plugin gives them. HooklineClient types
// request('Name', variables) and subscribe('Name', variables, ...) with these
// maps, so a new operation in operations.graphql needs no edit of client.ts.
module.exports = {
  plugin(_schema, documents) {
    const entries = { Operations: [], Subscriptions: [] };
    for (const { document } of documents) {
      for (const definition of document?.definitions ?? []) {
        if (definition.kind !== 'OperationDefinition') continue;
        if (!definition.name) throw new Error('every operation needs a name, for the operation map');
        const name = definition.name.value;
        const kind = definition.operation[0].toUpperCase() + definition.operation.slice(1);
        const map = definition.operation === 'subscription' ? 'Subscriptions' : 'Operations';
        entries[map].push(`  ${name}: [${name}${kind}, ${name}${kind}Variables];`);
      }
    }
    const block = (map, what) =>
      `/** ${what}, by operation name: [result, variables]. */\nexport interface ${map} {\n${entries[map].join('\n')}\n}\n`;
    return [
      block('Operations', 'Every query and mutation of src/operations.graphql'),
      block('Subscriptions', 'Every subscription of src/operations.graphql'),
    ].join('\n');
  },
};
