// ethers.js v6 Wallet.signMessage, checked with verifyMessage. Usage: node ethers_sign.mjs
// PRIVATE_KEY MESSAGE. Prints one JSON object: the signer, the signature, the recovered address.
import { Wallet, verifyMessage } from "ethers";

const [key, message] = process.argv.slice(2);
const wallet = new Wallet(key);
const signature = await wallet.signMessage(message);
console.log(JSON.stringify({
  signer: wallet.address, signature, recovered: verifyMessage(message, signature),
}));
