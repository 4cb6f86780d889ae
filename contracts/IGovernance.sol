// SPDX-License-Identifier: MIT
pragma solidity >=0.5.0;

/// The governance precompile (SPEC.md §7; docs/PRECOMPILES.md "Governance"), built into every
/// CyberMiles node at 0x0000000000000000000000000000000000c0de06:
///
///     IGovernance constant GOVERNANCE = IGovernance(0x0000000000000000000000000000000000c0de06);
///
/// The actor is the calling contract (`address(this)` of the frame that calls; an externally
/// owned account may also call it directly); it must own a current validator or backup
/// validator. Each write runs the governance module's rules, as the `governance/*` system
/// transaction of the same name: a refusal reverts with the module's reason
/// (`Error(string)`), and a caller that reverts undoes the proposal or vote with the rest of
/// its state. A proposal's fee (its `*_proposal_gas` parameter × gas_price) is taken from the
/// caller's balance; calls must send no value. An optional height or time is 0 for "omitted".
///
/// Proposal ids: a proposal made here gets keccak256(tx hash ‖ caller ‖ n), n the 32-byte
/// counter of ids derived in the transaction (from 0); the propose functions return it and the
/// `governance/proposed` log carries it. Under eth_call the tx hash is zero: the id returned
/// there is not the one the transaction will get.
interface IGovernance {
    /// Move `amount` wei from `from` into escrow now, to `to` if approved (back if not).
    function proposeTransferFund(
        address from,
        address to,
        uint256 amount,
        string calldata reason,
        uint256 expireTimestamp,
        uint256 expireBlockHeight
    ) external returns (bytes32 proposalId);

    /// Change the chain parameter `name` to `value` (as its genesis text) if approved.
    function proposeChangeParam(
        string calldata name,
        string calldata value,
        string calldata reason,
        uint256 expireTimestamp,
        uint256 expireBlockHeight
    ) external returns (bytes32 proposalId);

    /// Enable version `version` ("vX.Y.Z") of ENI library `name` from the deploy point on.
    /// `fileUrl` and `md5` are JSON objects (text), kept as the proposal's record.
    function proposeDeployLibEni(
        string calldata name,
        string calldata version,
        string calldata fileUrl,
        string calldata md5,
        string calldata reason,
        uint256 deployTimestamp,
        uint256 deployBlockHeight
    ) external returns (bytes32 proposalId);

    /// Halt the chain for good after block `retiredBlockHeight` if approved.
    function proposeRetireProgram(
        string calldata preservedValidators,
        string calldata reason,
        uint256 retiredBlockHeight
    ) external returns (bytes32 proposalId);

    /// Halt the chain after block `upgradeBlockHeight` until nodes run `name` `version`.
    function proposeUpgradeProgram(
        string calldata name,
        string calldata version,
        string calldata fileUrl,
        string calldata md5,
        string calldata reason,
        uint256 upgradeBlockHeight
    ) external returns (bytes32 proposalId);

    /// Vote on an undecided proposal (true: "Y"); a second vote replaces the first.
    function vote(bytes32 proposalId, bool answer) external;

    /// The proposal `proposalId`; all zero with `exists` false if there is none. `seq` is its
    /// creation number (from 1); `kind` "transfer_fund", "change_param", "deploy_libeni",
    /// "retire_program" or "upgrade_program"; `detail` the canonical JSON of its fields. One of
    /// `expireBlockHeight` / `expireTimestamp` is 0.
    function proposal(bytes32 proposalId)
        external
        view
        returns (
            bool exists,
            uint256 seq,
            string memory kind,
            address proposer,
            uint256 blockHeight,
            uint256 expireBlockHeight,
            uint256 expireTimestamp,
            string memory detail
        );

    /// Its result: 0 undecided (or no such proposal), 1 approved, 2 rejected, 3 expired;
    /// `executed`: an approved deploy/retire/upgrade whose effect has run.
    function proposalOutcome(bytes32 proposalId)
        external
        view
        returns (uint8 result, uint256 resultBlockHeight, string memory resultMsg, bool executed);

    /// How many proposals were ever made.
    function proposalCount() external view returns (uint256);

    /// The id of the `seq`-th proposal (from 1); zero if there is none.
    function proposalId(uint256 seq) external view returns (bytes32);

    /// `voter`'s vote on the proposal: (false, false) if it did not vote.
    function voteOf(bytes32 proposalId, address voter) external view returns (bool voted, bool answer);
}
