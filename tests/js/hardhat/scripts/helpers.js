// hardhat-network-helpers against the devnet: time.increase + time.latest, mine(10), setBalance,
// impersonateAccount + a transfer sent from the impersonated address, stopImpersonatingAccount.
// `npx hardhat run --network cybermiles scripts/helpers.js`; reports what each step observed.
const { ethers } = require("hardhat");
const helpers = require("@nomicfoundation/hardhat-network-helpers");
const { report, runMain } = require("../lib/scenario");

// Addresses nobody holds a key for (the first 20 bytes of a hash).
const WHALE = ethers.getAddress(ethers.dataSlice(ethers.id("cybermiles impersonated whale"), 0, 20));
const PAYEE = ethers.getAddress(ethers.dataSlice(ethers.id("cybermiles payee"), 0, 20));

runMain(async () => {
  const timeBefore = await helpers.time.latest();
  const timeAfter = await helpers.time.increase(3600);
  const blockAfterTime = await helpers.time.latestBlock();

  const blockBeforeMine = await helpers.time.latestBlock();
  await helpers.mine(10);
  const blockAfterMine = await helpers.time.latestBlock();

  await helpers.setBalance(WHALE, ethers.parseEther("100"));
  const whaleBalanceSet = await ethers.provider.getBalance(WHALE);

  await helpers.impersonateAccount(WHALE);
  const whale = await ethers.getSigner(WHALE);
  const tx = await whale.sendTransaction({ to: PAYEE, value: ethers.parseEther("1") });
  const receipt = await tx.wait();
  await helpers.stopImpersonatingAccount(WHALE);

  let afterStop = null;
  try {
    await whale.sendTransaction({ to: PAYEE, value: 1n });
  } catch (error) {
    afterStop = error.message;
  }

  report({
    timeBefore,
    timeAfter,
    blockAfterTime,
    blockBeforeMine,
    blockAfterMine,
    whale: WHALE,
    payee: PAYEE,
    whaleBalanceSet,
    impersonatedHash: receipt.hash,
    impersonatedFrom: tx.from,
    impersonatedStatus: receipt.status,
    impersonatedGasPrice: receipt.gasPrice,
    payeeBalance: await ethers.provider.getBalance(PAYEE),
    sendAfterStopError: afterStop,
  });
});
