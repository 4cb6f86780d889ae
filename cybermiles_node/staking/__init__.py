"""DPoS staking (SPEC §5, §6): candidates, delegations, elections, awards, unstaking, slashing.

The shape of Cosmos SDK's x/staking (DESIGN.md §7): `records` are the frozen values, `keeper`
the only module that knows the storage layout, `msgs` the parsed transactions with their
stateless checks, `rules` one guard per message run at admission and at execution, `power` and
`awards` pure arithmetic. No trio, disk, clock, rpc or consensus in here.
"""
