// ethers.js v6's default fee path: `type: 2` transactions without any fee field, from a Wallet
// (ethers fills the fees from getFeeData) and from the node's JsonRpcSigner (eth_sendTransaction;
// the node fills them). Usage: node ethers_fees.mjs RPC_URL PRIVATE_KEY NODE_ACCOUNT TO
// Prints one JSON object: ethers' fee data and each transaction's hash and fee fields.
import { JsonRpcProvider, Wallet } from "ethers";

const [url, key, nodeAccount, to] = process.argv.slice(2);
const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true });
const text = (value) => (value == null ? null : value.toString());

async function send(signer, value) {
  const tx = await signer.sendTransaction({ to, value, type: 2 });
  const receipt = await tx.wait();
  return {
    hash: tx.hash,
    type: tx.type,
    maxFeePerGas: text(tx.maxFeePerGas),
    maxPriorityFeePerGas: text(tx.maxPriorityFeePerGas),
    gasPrice: text(receipt.gasPrice),
    status: receipt.status,
  };
}

const feeData = await provider.getFeeData();
const wallet = await send(new Wallet(key, provider), 1n);
const node = await send(await provider.getSigner(nodeAccount), 2n);
console.log(JSON.stringify({
  feeData: { gasPrice: text(feeData.gasPrice), maxFeePerGas: text(feeData.maxFeePerGas),
             maxPriorityFeePerGas: text(feeData.maxPriorityFeePerGas) },
  wallet,
  node,
}));
provider.destroy();
