// Shared by the tests: where the schemas are, fresh directories, the store.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
export const { Store } = require('../lib/index.js');

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..', '..');
export const typesProto = path.join(here, 'fixtures', 'types.proto');
export const gatewayProto = path.join(repoRoot, 'proto', 'example', 'gateway.proto');
export const gatewayOptions = {
  proto: gatewayProto,
  includeDirs: [repoRoot],
  message: 'walstate.example.GatewaySession',
};
export const typesOptions = { proto: typesProto, message: 'walstate.test.TypesSession' };

export function tempDir(name) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `walstate-node-${name}-`));
}
