// SPDX-License-Identifier: MIT
pragma solidity >=0.5.0;

/// The staking precompile (SPEC.md §6, §9; docs/PRECOMPILES.md "Staking"), built into every
/// CyberMiles node at 0x0000000000000000000000000000000000c0de05:
///
///     IStaking constant STAKING = IStaking(0x0000000000000000000000000000000000c0de05);
///
/// The staker is the calling contract (`address(this)` of the frame that calls; an externally
/// owned account may also call it directly). Delegations from here are "cmt_wallet"
/// delegations: no Cube signature. A rule the staking module refuses reverts with the module's
/// reason (`Error(string)`), so `require`/`try ... catch Error(string memory)` see it; a caller
/// that reverts undoes the staking change with the rest of its state. Calls must send no value:
/// the stake is taken from the caller's own balance.
interface IStaking {
    /// Stake `amount` wei of the caller's balance with the candidate owned by `candidate`
    /// (stake/delegate). Fails in a static context (STATICCALL, `view`).
    function delegate(address candidate, uint256 amount) external;

    /// Start unbonding `amount` wei of the caller's delegation to `candidate`; with `completely`
    /// the whole delegation (stake/withdraw). Paid back after `unstake_waiting_period` blocks.
    function withdraw(address candidate, uint256 amount, bool completely) external;

    /// The candidate owned by `owner`; all zero with `exists` false if there is none.
    /// `compRateNumerator / compRateDenominator` is its default compensation rate; `state` is
    /// 0 Candidate, 1 Validator, 2 Backup Validator (the last election's verdict).
    function candidate(address owner)
        external
        view
        returns (
            bool exists,
            bytes32 pubKey,
            uint256 shares,
            uint256 maxShares,
            uint256 compRateNumerator,
            uint256 compRateDenominator,
            bool active,
            uint8 state,
            uint256 votingPower,
            bool withdrawn
        );

    /// The delegation of `delegator` to the candidate owned by `candidate`, in wei; all zero
    /// with `exists` false if there is none. `shares` = delegate + award - withdraw - slash -
    /// pendingWithdraw (what still counts for the candidate).
    function delegation(address candidate, address delegator)
        external
        view
        returns (
            bool exists,
            uint256 delegateAmount,
            uint256 awardAmount,
            uint256 withdrawAmount,
            uint256 pendingWithdrawAmount,
            uint256 slashAmount,
            uint256 shares,
            uint256 votingPower,
            bool completelyWithdraw
        );

    /// The owners of every candidate ever declared (withdrawn ones included), ascending.
    function candidates() external view returns (address[] memory);
}
