// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import "../IStaking.sol";

/// A contract that stakes its own CMT through the staking precompile (contracts/IStaking.sol),
/// for the tests: plain calls, a delegation undone by a revert, a delegation tried in a static
/// context, a refusal caught with its reason, and the views.
contract StakingUser {
    IStaking constant STAKING = IStaking(address(0xc0de05));

    /// How many times `delegateInRevertedCall` ran: proves its transaction succeeded.
    uint256 public attempts;
    /// The outcome of the last `tryDelegate` / `delegateStatic`.
    string public lastReason;
    bool public lastStaticOk;

    receive() external payable {}

    function delegate(address candidate, uint256 amount) external {
        STAKING.delegate(candidate, amount);
    }

    function withdraw(address candidate, uint256 amount, bool completely) external {
        STAKING.withdraw(candidate, amount, completely);
    }

    /// Delegates, then reverts: nothing of the delegation may survive.
    function delegateThenRevert(address candidate, uint256 amount) external {
        STAKING.delegate(candidate, amount);
        revert("StakingUser: reverted after delegating");
    }

    /// Calls `delegateThenRevert` on itself and carries on: this transaction succeeds while the
    /// inner call (and its delegation) is undone. A low-level call rather than try/catch, whose
    /// decoding code wraps around in ways Lity's checked arithmetic refuses.
    function delegateInRevertedCall(address candidate, uint256 amount) external {
        attempts += 1;
        (bool ok, ) = address(this).call(
            abi.encodeWithSelector(this.delegateThenRevert.selector, candidate, amount)
        );
        require(!ok, "StakingUser: the inner call should have reverted");
    }

    /// Delegates, keeping the precompile's refusal reason instead of reverting ("" = done).
    function tryDelegate(address candidate, uint256 amount) external returns (string memory) {
        try STAKING.delegate(candidate, amount) {
            lastReason = "";
        } catch Error(string memory reason) {
            lastReason = reason;
        }
        return lastReason;
    }

    /// Delegates through STATICCALL, which must fail: records whether it succeeded.
    function delegateStatic(address candidate, uint256 amount) external returns (bool ok) {
        (ok, ) = address(STAKING).staticcall(
            abi.encodeWithSelector(IStaking.delegate.selector, candidate, amount)
        );
        lastStaticOk = ok;
    }

    /// This contract's delegation to `candidate`: (exists, shares, pending withdrawal).
    function myDelegation(address candidate)
        external
        view
        returns (bool exists, uint256 shares, uint256 pendingWithdrawAmount)
    {
        (exists, , , , pendingWithdrawAmount, , shares, , ) = STAKING.delegation(
            candidate,
            address(this)
        );
    }

    /// The candidate's shares and state through the view (exists false: none).
    function candidateShares(address owner)
        external
        view
        returns (bool exists, uint256 shares, uint8 state)
    {
        (exists, , shares, , , , , state, , ) = STAKING.candidate(owner);
    }

    function allCandidates() external view returns (address[] memory) {
        return STAKING.candidates();
    }
}
