// Prints a YAML file (a compose file) as JSON, so that the Python tests read it without a YAML module.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

process.stdout.write(JSON.stringify(parse(readFileSync(process.argv[2], 'utf8'))));
