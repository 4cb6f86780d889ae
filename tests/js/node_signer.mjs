// ethers.js v6 through the node's signer (JsonRpcSigner: eth_sign / eth_signTypedData_v4 on the
// node), each signature verified here, client-side. Usage: node node_signer.mjs RPC_URL ADDRESS
// Prints one JSON object: the signatures and the addresses ethers recovers from them.
import { JsonRpcProvider, verifyMessage, verifyTypedData } from "ethers";

const [url, address] = process.argv.slice(2);
const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true });
const signer = await provider.getSigner(address);
const network = await provider.getNetwork();

const message = "CyberMiles says hello";
const messageSignature = await signer.signMessage(message);

const domain = { name: "CyberMiles", version: "1", chainId: network.chainId,
                 verifyingContract: "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC" };
const types = { Mail: [{ name: "from", type: "address" }, { name: "contents", type: "string" },
                       { name: "amount", type: "uint256" }] };
const value = { from: address, contents: "stake with me", amount: 10n ** 18n };
const typedSignature = await signer.signTypedData(domain, types, value);

console.log(JSON.stringify({
  signer: await signer.getAddress(),
  chainId: network.chainId.toString(),
  messageSignature,
  messageSigner: verifyMessage(message, messageSignature),
  typedSignature,
  typedSigner: verifyTypedData(domain, types, value, typedSignature),
}));
provider.destroy();
