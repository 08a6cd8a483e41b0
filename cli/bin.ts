#!/usr/bin/env node
// Entry point: refuse an old Node before loading anything that needs a new one.
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  process.stderr.write(
    `slapmesh needs Node.js 22 or newer (this is ${process.version}). ` +
      'Run it through npm (npm run …, npx slapmesh …) from the project folder, which uses the Node.js it installs.\n',
  );
  process.exit(1);
}
// Before anything allocates: V8 counts buffers as newer V8 does (node/v8-flags.ts).
(await import('../node/v8-flags.js')).countExternalMemoryAsHeld();
// `buildout` loads only what it needs: a node runs it for every deployment.
const { main } = await import(process.argv[2] === 'buildout' ? './buildout-main.js' : './main.js');
process.exitCode = await main(process.argv.slice(2));
