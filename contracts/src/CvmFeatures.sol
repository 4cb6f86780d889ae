// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// The CyberMiles VM features from modern Solidity, through the precompiles of docs/PRECOMPILES.md:
/// native libraries (ENI), the randomness beacon, the validator set, and freegas (the contract pays
/// its callers' gas).
interface IEni {
    function call(string calldata fn, string calldata argsJson) external returns (string memory);
}

interface IRandomness {
    function random() external returns (uint256);
    function randomAt(uint256 height) external view returns (uint256);
}

interface IValidators {
    function isValidator(address who) external view returns (bool);
}

interface IFreegas {
    function freegas() external;
}

contract CvmFeatures {
    IEni constant ENI = IEni(address(0xc0de01));
    IRandomness constant RANDOMNESS = IRandomness(address(0xc0de02));
    IValidators constant VALIDATORS = IValidators(address(0xc0de03));
    IFreegas constant FREEGAS = IFreegas(address(0xc0de04));

    uint256 public lastRandom;
    uint256 public counter;
    string public lastResult;

    event Drawn(uint256 value);

    receive() external payable {}

    function native(string calldata fn, string calldata argsJson) external returns (string memory) {
        string memory result = ENI.call(fn, argsJson);
        lastResult = result;
        return result;
    }

    function draw() external returns (uint256) {
        lastRandom = RANDOMNESS.random();
        emit Drawn(lastRandom);
        return lastRandom;
    }

    function beaconAt(uint256 height) external view returns (uint256) {
        return RANDOMNESS.randomAt(height);
    }

    function isValidator(address who) external view returns (bool) {
        return VALIDATORS.isValidator(who);
    }

    /// Free for the caller: this contract pays the gas.
    function incrementFree() external {
        counter += 1;
        FREEGAS.freegas();
    }

    /// Not marked: sent with price 0 it fails and nobody pays.
    function incrementPaid() external {
        counter += 1;
    }
}
