// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import "../IGovernance.sol";

/// A contract that takes part in governance through the precompile (contracts/IGovernance.sol),
/// for the tests: each kind of proposal, votes, two proposals in one transaction, a proposal
/// undone by a revert, and the views. Its owner must own a validator for the writes to pass:
/// the actor is this contract, so the tests make it a validator's owner.
contract GovernanceUser {
    IGovernance constant GOVERNANCE = IGovernance(address(0xc0de06));

    /// The ids the last proposing call got (two for `proposeTwice`).
    bytes32 public lastId;
    bytes32 public secondId;
    /// How many times `proposeInRevertedCall` ran: proves its transaction succeeded.
    uint256 public attempts;

    receive() external payable {}

    function proposeTransferFund(address from, address to, uint256 amount, uint256 expireHeight)
        external
        returns (bytes32)
    {
        lastId = GOVERNANCE.proposeTransferFund(from, to, amount, "from a contract", 0, expireHeight);
        return lastId;
    }

    function proposeChangeParam(string calldata name, string calldata value) external returns (bytes32) {
        lastId = GOVERNANCE.proposeChangeParam(name, value, "from a contract", 0, 0);
        return lastId;
    }

    function proposeDeployLibEni(
        string calldata name,
        string calldata version,
        uint256 deployHeight
    ) external returns (bytes32) {
        lastId = GOVERNANCE.proposeDeployLibEni(
            name, version, '{"linux":"https://example.org/lib"}', '{"linux":"00"}', "", 0, deployHeight
        );
        return lastId;
    }

    function proposeRetireProgram(uint256 height) external returns (bytes32) {
        lastId = GOVERNANCE.proposeRetireProgram("", "from a contract", height);
        return lastId;
    }

    function proposeUpgradeProgram(string calldata name, string calldata version, uint256 height)
        external
        returns (bytes32)
    {
        lastId = GOVERNANCE.proposeUpgradeProgram(name, version, "{}", "{}", "", height);
        return lastId;
    }

    /// Two proposals in one transaction: each gets its own id.
    function proposeTwice(string calldata name, string calldata value1, string calldata value2) external {
        lastId = GOVERNANCE.proposeChangeParam(name, value1, "", 0, 0);
        secondId = GOVERNANCE.proposeChangeParam(name, value2, "", 0, 0);
    }

    function vote(bytes32 proposalId, bool answer) external {
        GOVERNANCE.vote(proposalId, answer);
    }

    /// Proposes (max_vals = 7), then reverts: nothing of the proposal may survive.
    function proposeThenRevert() external {
        GOVERNANCE.proposeChangeParam("max_vals", "7", "", 0, 0);
        revert("GovernanceUser: reverted after proposing");
    }

    /// Calls `proposeThenRevert` on itself and carries on: this transaction succeeds while the
    /// inner call (and its proposal) is undone. A low-level call with no arguments: solc's
    /// encoding of strings and its try/catch decoding wrap around in ADD, which Lity refuses.
    function proposeInRevertedCall() external {
        attempts += 1;
        (bool ok, ) = address(this).call(abi.encodeWithSelector(this.proposeThenRevert.selector));
        require(!ok, "GovernanceUser: the inner call should have reverted");
    }

    /// The proposal's kind, proposer and result through the views.
    function describe(bytes32 proposalId)
        external
        view
        returns (bool exists, string memory kind, address proposer, uint8 result)
    {
        (exists, , kind, proposer, , , , ) = GOVERNANCE.proposal(proposalId);
        (result, , , ) = GOVERNANCE.proposalOutcome(proposalId);
    }

    function count() external view returns (uint256) {
        return GOVERNANCE.proposalCount();
    }

    function idAt(uint256 seq) external view returns (bytes32) {
        return GOVERNANCE.proposalId(seq);
    }

    function myVote(bytes32 proposalId) external view returns (bool voted, bool answer) {
        return GOVERNANCE.voteOf(proposalId, address(this));
    }
}
