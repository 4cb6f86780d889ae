// ethers.js v6 deploys an ERC-20 (a contracts/build artifact) with default fees, transfers, and
// asks the node for traces of that transfer through provider.send: debug_traceTransaction with
// the default struct-log tracer and with callTracer.
// Usage: node ethers_trace.mjs RPC_URL PRIVATE_KEY ARTIFACT_JSON TO
// Prints one JSON object: the transfer's receipt facts and summaries of both traces.
import { readFileSync } from "node:fs";
import { ContractFactory, JsonRpcProvider, Wallet } from "ethers";

const [url, key, artifactPath, to] = process.argv.slice(2);
const artifact = JSON.parse(readFileSync(artifactPath, "utf8"));
const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true });
const wallet = new Wallet(key, provider);

const token = await new ContractFactory(artifact.abi, artifact.bytecode, wallet).deploy(10n ** 6n);
await token.waitForDeployment();
// The next nonce by hand: ethers answers a repeated eth_getTransactionCount from a short-lived cache.
const nonce = token.deploymentTransaction().nonce + 1;
const receipt = await (await token.transfer(to, 10n, { nonce })).wait();

const struct = await provider.send("debug_traceTransaction", [receipt.hash, {}]);
const calls = await provider.send("debug_traceTransaction", [receipt.hash, { tracer: "callTracer" }]);
console.log(JSON.stringify({
  token: await token.getAddress(),
  from: wallet.address,
  hash: receipt.hash,
  gasUsed: receipt.gasUsed.toString(),
  struct: {
    failed: struct.failed,
    gas: struct.gas,
    returnValue: struct.returnValue,
    steps: struct.structLogs.length,
    first: struct.structLogs[0] ?? null,
    ops: [...new Set(struct.structLogs.map((log) => log.op))].sort(),
  },
  calls,
}));
provider.destroy();
