// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// A value only its owner may change: anyone else's call reverts with a reason string
/// (Error(string)), which clients decode.
contract Guarded {
    address public immutable owner;
    uint256 public value;

    event Changed(uint256 value);

    constructor() {
        owner = msg.sender;
    }

    function set(uint256 newValue) external {
        require(msg.sender == owner, "Guarded: caller is not the owner");
        value = newValue;
        emit Changed(newValue);
    }
}
