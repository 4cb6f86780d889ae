// loadFixture (evm_snapshot/evm_revert) and a revert reason, as a Hardhat project's mocha tests:
// `npx hardhat test --network cybermiles`.
const assert = require("node:assert/strict");
const { ethers } = require("hardhat");
const { loadFixture } = require("@nomicfoundation/hardhat-network-helpers");
const { revertReason } = require("../lib/scenario");

const SUPPLY = 1_000_000n;

async function deployTokenFixture() {
  const [owner, alice] = await ethers.getSigners();
  const token = await ethers.deployContract("Token", [SUPPLY]);
  const guarded = await ethers.deployContract("Guarded");
  await token.waitForDeployment();
  await guarded.waitForDeployment();
  const block = await ethers.provider.getBlockNumber();
  return { token, guarded, owner, alice, block };
}

describe("loadFixture on a CyberMiles devnet", function () {
  it("deploys the fixture once", async function () {
    const { token, owner } = await loadFixture(deployTokenFixture);
    assert.equal(await token.balanceOf(owner.address), SUPPLY);
  });

  it("sees its own transfer", async function () {
    const { token, alice } = await loadFixture(deployTokenFixture);
    await (await token.transfer(alice.address, 250n)).wait();
    assert.equal(await token.balanceOf(alice.address), 250n);
  });

  it("starts again from the snapshot: state and blocks reverted", async function () {
    const { token, owner, alice, block } = await loadFixture(deployTokenFixture);
    assert.equal(await token.balanceOf(alice.address), 0n);
    assert.equal(await token.balanceOf(owner.address), SUPPLY);
    assert.equal(await ethers.provider.getBlockNumber(), block);
  });

  it("gets the revert reason of a refused call", async function () {
    const { guarded, alice } = await loadFixture(deployTokenFixture);
    await assert.rejects(guarded.connect(alice).set(1n), (error) => {
      assert.equal(revertReason(guarded, error), "Guarded: caller is not the owner");
      return true;
    });
    await (await guarded.set(5n)).wait();
    assert.equal(await guarded.value(), 5n);
  });
});
