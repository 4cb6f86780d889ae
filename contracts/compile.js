#!/usr/bin/env node
// Compiles contracts/src/*.sol with the pinned solcjs (see package.json) and writes
// deterministic artifacts to contracts/build/ (sorted keys, trailing newline): one
// <Contract>.json per contract for the `cvm` profile (evmVersion prague), and
// <Contract>.lity.json for those listed in LITY_CONTRACTS (evmVersion byzantium: the `lity`
// profile has no PUSH0, CREATE2, EXTCODEHASH, ...; see README.md).
// Source units are named by their path under contracts/ ("src/StakingUser.sol"), so a source
// imports the interfaces beside this script with a relative path ("../IStaking.sol").
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const ROOT = __dirname;
const SRC_DIR = path.join(ROOT, 'src');
const BUILD_DIR = path.join(ROOT, 'build');
const OPTIMIZER = { enabled: true, runs: 200 };
// One build per EVM target: which contracts, which evmVersion, which artifact name.
const TARGETS = [
  { evmVersion: 'prague', suffix: '', contracts: ['CvmFeatures', 'GovernanceUser', 'StakingUser', 'TestToken'] },
  { evmVersion: 'byzantium', suffix: '.lity', contracts: ['GovernanceUser', 'StakingUser', 'TestToken'] },
];

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key]);
    return out;
  }
  return value;
}

// Imports resolve inside contracts/ only (solc has already normalised "../" against the importer).
function findImports(unitName) {
  const file = path.resolve(ROOT, unitName);
  if (!file.startsWith(ROOT + path.sep)) return { error: `import outside contracts/: ${unitName}` };
  try {
    return { contents: fs.readFileSync(file, 'utf8') };
  } catch (err) {
    return { error: `cannot read ${unitName}: ${err.message}` };
  }
}

function readSources() {
  const sources = {};
  for (const file of fs.readdirSync(SRC_DIR).filter((f) => f.endsWith('.sol')).sort()) {
    sources[`src/${file}`] = { content: fs.readFileSync(path.join(SRC_DIR, file), 'utf8') };
  }
  return sources;
}

function compile(sources, evmVersion) {
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      evmVersion,
      optimizer: OPTIMIZER,
      // No source-path/metadata hash noise across machines: metadata hash of the literal content.
      metadata: { bytecodeHash: 'none' },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const diagnostics = output.errors || [];
  for (const d of diagnostics) process.stderr.write((d.formattedMessage || d.message) + '\n');
  if (diagnostics.some((d) => d.severity === 'error')) {
    process.stderr.write('compilation failed\n');
    process.exit(1);
  }
  return output;
}

function writeArtifact(output, name, evmVersion, suffix) {
  const file = `src/${name}.sol`;
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
      evmVersion,
      optimizer: OPTIMIZER,
    },
  });
  const outPath = path.join(BUILD_DIR, `${name}${suffix}.json`);
  fs.writeFileSync(outPath, JSON.stringify(artifact, null, 2) + '\n');
  process.stdout.write(`wrote ${path.relative(process.cwd(), outPath)}\n`);
}

function main() {
  const sources = readSources();
  fs.mkdirSync(BUILD_DIR, { recursive: true });
  for (const { evmVersion, suffix, contracts } of TARGETS) {
    const output = compile(sources, evmVersion);
    for (const name of contracts) writeArtifact(output, name, evmVersion, suffix);
  }
}

try {
  main();
} catch (err) {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
}
