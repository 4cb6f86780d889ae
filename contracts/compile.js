#!/usr/bin/env node
// Compiles contracts/src/*.sol with the pinned solcjs (see package.json) and writes
// deterministic artifacts to contracts/build/<Contract>.json (sorted keys, trailing newline).
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const ROOT = __dirname;
const SRC_DIR = path.join(ROOT, 'src');
const BUILD_DIR = path.join(ROOT, 'build');
const CONTRACTS = ['CvmFeatures', 'TestToken'];
const EVM_VERSION = 'prague';
const OPTIMIZER = { enabled: true, runs: 200 };

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key]);
    return out;
  }
  return value;
}

function main() {
  const sources = {};
  for (const file of fs.readdirSync(SRC_DIR).filter((f) => f.endsWith('.sol')).sort()) {
    sources[file] = { content: fs.readFileSync(path.join(SRC_DIR, file), 'utf8') };
  }
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      evmVersion: EVM_VERSION,
      optimizer: OPTIMIZER,
      // No source-path/metadata hash noise across machines: metadata hash of the literal content.
      metadata: { bytecodeHash: 'none' },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const diagnostics = output.errors || [];
  for (const d of diagnostics) process.stderr.write((d.formattedMessage || d.message) + '\n');
  if (diagnostics.some((d) => d.severity === 'error')) {
    process.stderr.write('compilation failed\n');
    process.exit(1);
  }
  fs.mkdirSync(BUILD_DIR, { recursive: true });
  for (const name of CONTRACTS) {
    const file = `${name}.sol`;
    const c = output.contracts && output.contracts[file] && output.contracts[file][name];
    if (!c || !c.evm.bytecode.object) {
      process.stderr.write(`contract ${name} not found in ${file}\n`);
      process.exit(1);
    }
    const artifact = sortKeys({
      contractName: name,
      abi: c.abi,
      bytecode: '0x' + c.evm.bytecode.object,
      deployedBytecode: '0x' + c.evm.deployedBytecode.object,
      compiler: {
        version: solc.version(),
        evmVersion: EVM_VERSION,
        optimizer: OPTIMIZER,
      },
    });
    const outPath = path.join(BUILD_DIR, `${name}.json`);
    fs.writeFileSync(outPath, JSON.stringify(artifact, null, 2) + '\n');
    process.stdout.write(`wrote ${path.relative(process.cwd(), outPath)}\n`);
  }
}

try {
  main();
} catch (err) {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
}
