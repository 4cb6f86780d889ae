"""Genesis: the file a CyberMiles chain starts from, its parameters, and network presets.

The public interface of the package is the list below; other modules of the node import only
these names. `schema` holds the typed `Genesis` and its strict JSON codec, `params` the SPEC §3
parameter table, `presets` the chain ids and the devnet generator. Every bad input raises
`GenesisError` (a `ValueError`) whose `field` is the dotted path of the culprit.
"""

from genesis._codec import parse_address, parse_rational, parse_uint, type_name
from genesis.errors import GenesisError, ParamError
from genesis.params import (
    PARAM_NAMES,
    PARAM_SPEC_BY_NAME,
    PARAM_SPECS,
    Params,
    ParamSpec,
    ParamValue,
    change_param,
    default_params,
    param_to_json,
    params_from_json,
    params_to_json,
    parse_param,
)
from genesis.presets import (
    DEV_MNEMONIC,
    PRESET_CHAIN_IDS,
    TRAVIS_DEV_ADDRESSES,
    DevAccount,
    dev_accounts,
    devnet_genesis,
    devnet_params,
    parse_param_overrides,
)
from genesis.schema import (
    CMT,
    HOLD_ADDRESS,
    MINT_ADDRESS,
    AllocAccount,
    ConsensusTimeouts,
    EvmProfile,
    Genesis,
    GenesisValidator,
    dump_genesis,
    dumps_genesis,
    genesis_to_json,
    load_genesis,
    loads_genesis_json,
    parse_genesis,
    parse_pub_key,
    validate_genesis,
)

__all__ = [
    "parse_address",
    "parse_pub_key",
    "parse_rational",
    "parse_uint",
    "type_name",
    "CMT",
    "DEV_MNEMONIC",
    "HOLD_ADDRESS",
    "MINT_ADDRESS",
    "PARAM_NAMES",
    "PARAM_SPECS",
    "PARAM_SPEC_BY_NAME",
    "PRESET_CHAIN_IDS",
    "TRAVIS_DEV_ADDRESSES",
    "AllocAccount",
    "ConsensusTimeouts",
    "DevAccount",
    "EvmProfile",
    "Genesis",
    "GenesisError",
    "GenesisValidator",
    "ParamError",
    "ParamSpec",
    "ParamValue",
    "Params",
    "change_param",
    "default_params",
    "dev_accounts",
    "devnet_genesis",
    "devnet_params",
    "dump_genesis",
    "dumps_genesis",
    "genesis_to_json",
    "load_genesis",
    "loads_genesis_json",
    "param_to_json",
    "params_from_json",
    "params_to_json",
    "parse_genesis",
    "parse_param",
    "parse_param_overrides",
    "validate_genesis",
]
