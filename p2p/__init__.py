"""CyberMiles peer-to-peer network: authenticated encrypted connections, channels, reactors.

The public interface: `Switch` runs the network; reactors (`Reactor`) plug in on channels
(`ChannelDescriptor`) and talk to `Peer`s; `PexReactor` and `MempoolReactor` are the two
reactors this package provides. See `p2p.abc` for the protocols and `p2p.switch` for the
connection lifecycle, scores and bans.
"""

from p2p.abc import (
    BLOCKSYNC,
    CONSENSUS_DATA,
    CONSENSUS_STATE,
    CONSENSUS_VOTE,
    EVIDENCE,
    MEMPOOL,
    PEX,
    PRIORITY_BLOCKSYNC,
    PRIORITY_CONSENSUS,
    PRIORITY_MEMPOOL,
    PRIORITY_PEX,
    ChannelDescriptor,
    NodeKey,
    Peer,
    Reactor,
    SwitchView,
    TxPool,
)
from p2p.addrbook import AddressBook
from p2p.connection import Timing
from p2p.errors import (
    ConnectionClosed,
    DecryptionFailed,
    DialFailed,
    FrameTooLarge,
    HandshakeFailed,
    MalformedFrame,
    P2PError,
    PeerMisbehaved,
)
from p2p.handshake import P2P_VERSION, NodeInfo
from p2p.mempool_reactor import MempoolReactor
from p2p.pex import PexReactor
from p2p.switch import Switch, SwitchConfig
from p2p.transport import MemoryNetwork, TcpTransport, Transport

__all__ = [
    "BLOCKSYNC",
    "CONSENSUS_DATA",
    "CONSENSUS_STATE",
    "CONSENSUS_VOTE",
    "EVIDENCE",
    "MEMPOOL",
    "P2P_VERSION",
    "PEX",
    "PRIORITY_BLOCKSYNC",
    "PRIORITY_CONSENSUS",
    "PRIORITY_MEMPOOL",
    "PRIORITY_PEX",
    "AddressBook",
    "ChannelDescriptor",
    "ConnectionClosed",
    "DecryptionFailed",
    "DialFailed",
    "FrameTooLarge",
    "HandshakeFailed",
    "MalformedFrame",
    "MemoryNetwork",
    "MempoolReactor",
    "NodeInfo",
    "NodeKey",
    "P2PError",
    "Peer",
    "PeerMisbehaved",
    "PexReactor",
    "Reactor",
    "Switch",
    "SwitchConfig",
    "SwitchView",
    "TcpTransport",
    "Timing",
    "Transport",
    "TxPool",
]
