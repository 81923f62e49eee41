// Drives the YAML language server (the one editors run for YAML files)
// over stdio as an editor does: initialize, open a policy file whose first
// line names the schema (`# yaml-language-server: $schema=...`), and print
// the diagnostics it publishes for it as one JSON line, then exit.
//
//   node tests/editor/lsp.mjs POLICY.yml
//
// Used by tests/schema.rs with the schema `portcullis schema` printed.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const file = process.argv[2];
const uri = pathToFileURL(file).href;
const server = spawn(
  process.execPath,
  [require.resolve('yaml-language-server/bin/yaml-language-server'), '--stdio'],
  { stdio: ['pipe', 'pipe', 'inherit'] },
);

let id = 0;
const pending = new Map();
function send(message) {
  const body = JSON.stringify({ jsonrpc: '2.0', ...message });
  server.stdin.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}
function request(method, params) {
  id += 1;
  send({ id, method, params });
  return new Promise((resolve) => pending.set(id, resolve));
}
function notify(method, params) {
  send({ method, params });
}

const settings = { yaml: { validate: true, hover: true, completion: true, schemaStore: { enable: false } } };
let buffer = Buffer.alloc(0);
server.stdout.on('data', (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  for (;;) {
    const head = buffer.indexOf('\r\n\r\n');
    if (head < 0) return;
    const length = Number(/Content-Length: (\d+)/i.exec(buffer.subarray(0, head).toString())[1]);
    if (buffer.length < head + 4 + length) return;
    const message = JSON.parse(buffer.subarray(head + 4, head + 4 + length).toString());
    buffer = buffer.subarray(head + 4 + length);
    if (message.id !== undefined && message.method) {
      // A request from the server: its configuration, and registrations.
      const result = message.method === 'workspace/configuration'
        ? message.params.items.map((item) => (item.section ? settings[item.section] ?? null : settings))
        : null;
      send({ id: message.id, result });
    } else if (message.id !== undefined) {
      pending.get(message.id)?.(message.result);
    } else if (message.method === 'textDocument/publishDiagnostics' && message.params.uri === uri) {
      process.stdout.write(JSON.stringify(message.params.diagnostics) + '\n');
      server.kill();
      process.exit(0);
    }
  }
});

setTimeout(() => {
  process.stderr.write('no diagnostics within 20 s\n');
  server.kill();
  process.exit(1);
}, 20000);

await request('initialize', {
  processId: process.pid,
  rootUri: null,
  capabilities: { workspace: { configuration: true }, textDocument: { publishDiagnostics: {} } },
});
notify('initialized', {});
notify('workspace/didChangeConfiguration', { settings });
notify('textDocument/didOpen', {
  textDocument: { uri, languageId: 'yaml', version: 1, text: readFileSync(file, 'utf8') },
});
