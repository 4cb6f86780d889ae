// A Hardhat 2 project driven against a CyberMiles devnet (tests/e2e/test_clients_hardhat.py; the
// README's "Using Hardhat / cast / ethers with the devnet"). Networks `cybermiles` (the node's
// accounts sign) and `cybermilesKeys` (Hardhat signs with the devnet mnemonic).
//
//   CYBERMILES_RPC_URL       the devnet's JSON-RPC URL (default http://127.0.0.1:8545, `make run`)
//   CYBERMILES_HARDHAT_BUILD where cache/ and artifacts/ go (default ./build); the suite compiles
//                            once per session into a temporary folder and runs with --no-compile
//   CYBERMILES_MOCHA_JSON    `hardhat test` writes mocha's JSON report to this file when set
//
// Nothing is downloaded: solc is the npm package `solc` (solcjs, pinned in ../package.json), not a
// compiler fetched by Hardhat. Run with CI=true (or HARDHAT_DISABLE_TELEMETRY_PROMPT=true) so that
// Hardhat neither asks about telemetry nor checks for updates.
const path = require("node:path");
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");
require("@nomicfoundation/hardhat-ethers");

const SOLC_VERSION = require("solc/package.json").version;

// Hardhat's own subtask downloads the compiler; ours answers with the solcjs build in node_modules.
subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async ({ solcVersion }) => {
  if (solcVersion !== SOLC_VERSION) {
    throw new Error(`only solc ${SOLC_VERSION} (npm) is installed, the config asks for ${solcVersion}`);
  }
  const solc = require("solc");
  return {
    compilerPath: require.resolve("solc/soljson.js"),
    isSolcJs: true,
    version: solcVersion,
    longVersion: solc.version(),
  };
});

const build = process.env.CYBERMILES_HARDHAT_BUILD || path.join(__dirname, "build");
const mochaJson = process.env.CYBERMILES_MOCHA_JSON;
const url = process.env.CYBERMILES_RPC_URL || "http://127.0.0.1:8545";

module.exports = {
  solidity: {
    version: SOLC_VERSION,
    // evmVersion prague: the devnet's default `cvm` profile (the `lity` one needs byzantium).
    settings: { evmVersion: "prague", optimizer: { enabled: true, runs: 200 } },
  },
  networks: {
    // As anvil's `localhost`: the node's own accounts (eth_accounts; a devnet unlocks them) sign,
    // and eth_sendTransaction from an impersonated address works.
    cybermiles: { url, timeout: 60000 },
    // The same devnet with keys held by Hardhat (the public test mnemonic of the funded accounts):
    // Hardhat signs locally, as for any remote network.
    cybermilesKeys: {
      url,
      accounts: { mnemonic: "test test test test test test test test test test test junk", count: 5 },
      timeout: 60000,
    },
  },
  paths: {
    sources: path.join(__dirname, "contracts"),
    tests: path.join(__dirname, "test"),
    scripts: path.join(__dirname, "scripts"),
    cache: path.join(build, "cache"),
    artifacts: path.join(build, "artifacts"),
  },
  mocha: mochaJson
    ? { reporter: "json", reporterOption: { output: mochaJson }, timeout: 60000 }
    : { timeout: 60000 },
};
