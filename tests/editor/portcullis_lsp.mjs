// Drives `portcullis lsp` with the language-server client library VS Code
// uses (vscode-languageserver-protocol over stdio), as an editor would:
// initialize, open a policy, edit it, ask for hover, completion and a
// definition, then shut down. Prints one JSON object of what the server
// answered, for tests/lsp.rs to check.
//
//   node tests/editor/portcullis_lsp.mjs PORTCULLIS_BINARY

import { spawn } from 'node:child_process';
import {
  createProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
  InitializeRequest,
  InitializedNotification,
  DidOpenTextDocumentNotification,
  DidChangeTextDocumentNotification,
  PublishDiagnosticsNotification,
  HoverRequest,
  CompletionRequest,
  DefinitionRequest,
  ShutdownRequest,
  ExitNotification,
} from 'vscode-languageserver-protocol/node.js';

const server = spawn(process.argv[2], ['lsp', '--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
const connection = createProtocolConnection(
  new StreamMessageReader(server.stdout),
  new StreamMessageWriter(server.stdin),
);
const published = [];
let waiting = null;
connection.onNotification(PublishDiagnosticsNotification.type, (params) => {
  published.push(params);
  if (waiting) waiting();
});
connection.listen();
const next = () => new Promise((resolve) => { waiting = resolve; });

const uri = 'file:///work/policy.yml';
const broken = [
  'on_http_request:',
  '  - actions:',
  '      - type: set-vars',
  '        config:',
  '          vars:',
  '            - tier: gold',
  '  - expressions:',
  "      - \"vars.tier == 'gold' && req.mehtod == 'GET'\"",
  '    actions:',
  '      - type: rate-limit',
  '        config:',
  '          name: per-client',
  '          algorithm: sliding_window',
  '          capacity: 10',
  '          rate: 60s',
  "          bucket_key: ['conn.client_ip']",
  '',
].join('\n');
const fixed = broken.replace('req.mehtod', 'req.method');

const out = {};
setTimeout(() => { process.stderr.write('the server did not answer in 20 s\n'); process.exit(1); }, 20000);

const init = await connection.sendRequest(InitializeRequest.type, {
  processId: process.pid, rootUri: null, capabilities: {},
});
out.capabilities = init.capabilities;
connection.sendNotification(InitializedNotification.type, {});

let started = performance.now();
let arrived = next();
connection.sendNotification(DidOpenTextDocumentNotification.type, {
  textDocument: { uri, languageId: 'yaml', version: 1, text: broken },
});
await arrived;
out.opened = { ...published.at(-1), ms: performance.now() - started };

started = performance.now();
arrived = next();
connection.sendNotification(DidChangeTextDocumentNotification.type, {
  textDocument: { uri, version: 2 },
  contentChanges: [{ text: fixed }],
});
await arrived;
out.changed = { ...published.at(-1), ms: performance.now() - started };

const at = (needle, plus = 0) => {
  const lines = fixed.split('\n');
  for (let line = 0; line < lines.length; line += 1) {
    const character = lines[line].indexOf(needle);
    if (character >= 0) return { line, character: character + plus };
  }
  throw new Error(`no ${needle}`);
};
out.hover_variable = await connection.sendRequest(HoverRequest.type, { textDocument: { uri }, position: at('req.method', 5) });
out.hover_action = await connection.sendRequest(HoverRequest.type, { textDocument: { uri }, position: at('rate-limit', 2) });
out.hover_field = await connection.sendRequest(HoverRequest.type, { textDocument: { uri }, position: at('capacity', 2) });
out.definition = await connection.sendRequest(DefinitionRequest.type, { textDocument: { uri }, position: at('vars.tier', 6) });

// Completion while typing `req.url.` in a new expression.
const typing = fixed.replace("req.method == 'GET'", 'req.url.');
arrived = next();
connection.sendNotification(DidChangeTextDocumentNotification.type, {
  textDocument: { uri, version: 3 }, contentChanges: [{ text: typing }],
});
await arrived;
const line = typing.split('\n').findIndex((l) => l.includes('req.url.'));
out.completion = await connection.sendRequest(CompletionRequest.type, {
  textDocument: { uri },
  position: { line, character: typing.split('\n')[line].indexOf('req.url.') + 'req.url.'.length },
});

await connection.sendRequest(ShutdownRequest.type);
connection.sendNotification(ExitNotification.type);
process.stdout.write(JSON.stringify(out) + '\n');
setTimeout(() => process.exit(0), 100);
