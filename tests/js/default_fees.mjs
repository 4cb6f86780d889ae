// ethers.js v6's default fee path against a devnet, right after blocks holding a price-0
// transaction: a `type: 2` transfer without fee fields, then a contract deployment with no
// overrides at all (ContractFactory.deploy). Usage:
//   node default_fees.mjs RPC_URL PRIVATE_KEY ARTIFACT_JSON
// Prints one JSON object: eth_gasPrice, and for each transaction its type, fee fields, the
// price it paid (receipt.gasPrice) and its block's baseFeePerGas.
import { readFileSync } from "node:fs";
import { ContractFactory, JsonRpcProvider, Wallet } from "ethers";

const [url, key, artifactPath] = process.argv.slice(2);
// cacheTimeout -1: ethers >= 6.14 caches identical calls for 250 ms, nonces included.
const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true, cacheTimeout: -1 });
const wallet = new Wallet(key, provider);
const to = "0x" + "5a".repeat(20);

async function freeTransfer() {
  // Explicitly free: a legacy transaction at price 0 (SPEC §4 runs it without a fee).
  const sent = await wallet.sendTransaction({ to, value: 1n, type: 0, gasPrice: 0n });
  return await sent.wait();
}

async function described(name, response) {
  const receipt = await response.wait();
  const block = await provider.send("eth_getBlockByNumber", [
    "0x" + receipt.blockNumber.toString(16), false]);
  return {
    name,
    type: response.type,
    maxFeePerGas: response.maxFeePerGas?.toString() ?? null,
    maxPriorityFeePerGas: response.maxPriorityFeePerGas?.toString() ?? null,
    paid: receipt.gasPrice.toString(),
    status: receipt.status,
    block: receipt.blockNumber,
    blockBaseFee: block.baseFeePerGas === undefined ? null : BigInt(block.baseFeePerGas).toString(),
  };
}

const free1 = await freeTransfer();
const latestAfterFree1 = await provider.getBlockNumber();
const transfer = await described(
  "type-2 transfer without fee fields",
  await wallet.sendTransaction({ to, value: 2n, type: 2 }),
);

const free2 = await freeTransfer();
const latestAfterFree2 = await provider.getBlockNumber();
const artifact = JSON.parse(readFileSync(artifactPath, "utf8"));
const factory = new ContractFactory(artifact.abi, artifact.bytecode, wallet);
const contract = await factory.deploy(1000n);
const deploy = await described("default deploy", contract.deploymentTransaction());

console.log(JSON.stringify({
  gasPrice: BigInt(await provider.send("eth_gasPrice", [])).toString(),
  free: [
    { paid: free1.gasPrice.toString(), block: free1.blockNumber, latestAfter: latestAfterFree1 },
    { paid: free2.gasPrice.toString(), block: free2.blockNumber, latestAfter: latestAfterFree2 },
  ],
  sent: [transfer, deploy],
  deployedCode: (await provider.getCode(await contract.getAddress())).length > 2,
}));
provider.destroy();
