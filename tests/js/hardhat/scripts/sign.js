// signer.signMessage (personal_sign: by Hardhat's local accounts or by the node's) verified with
// ethers.verifyMessage: `npx hardhat run --network cybermiles scripts/sign.js`.
const { ethers } = require("hardhat");
const { report, runMain } = require("../lib/scenario");

const MESSAGE = "CyberMiles devnet, signed by Hardhat";

runMain(async () => {
  const [signer] = await ethers.getSigners();
  const signature = await signer.signMessage(MESSAGE);
  report({
    message: MESSAGE,
    signer: signer.address,
    signature,
    recovered: ethers.verifyMessage(MESSAGE, signature),
  });
});
