// Deploy Token and Guarded with Hardhat's default fees (nothing set by hand), then use them:
// `npx hardhat run --network cybermiles scripts/deploy.js`. Reports what the transactions paid.
const { ethers } = require("hardhat");
const { report, revertReason, runMain } = require("../lib/scenario");

async function deployed(name, ...args) {
  const contract = await ethers.deployContract(name, args);
  await contract.waitForDeployment();
  const tx = contract.deploymentTransaction();
  return { contract, tx, receipt: await tx.wait() };
}

runMain(async () => {
  const [owner, other] = await ethers.getSigners();
  const token = await deployed("Token", 10n ** 24n);
  const guarded = await deployed("Guarded");
  const transfer = await (await token.contract.transfer(other.address, 1000n)).wait();
  let reason = null;
  try {
    await guarded.contract.connect(other).set.staticCall(7n);
  } catch (error) {
    reason = revertReason(guarded.contract, error);
  }
  report({
    owner: owner.address,
    other: other.address,
    token: await token.contract.getAddress(),
    guarded: await guarded.contract.getAddress(),
    deployHash: token.tx.hash,
    deployType: token.tx.type,
    deployMaxFeePerGas: token.tx.maxFeePerGas,
    deployMaxPriorityFeePerGas: token.tx.maxPriorityFeePerGas,
    guardedHash: guarded.tx.hash,
    transferHash: transfer.hash,
    otherTokenBalance: await token.contract.balanceOf(other.address),
    revertReason: reason,
  });
});
