"""Every byte format of kpaxos, declared once: Paxos datagrams and value envelopes."""

from wire.datagram import (
    MAX_DATAGRAM_SIZE,
    MAX_VALUE_SIZE,
    WireError,
    decode_untrusted,
    encode,
)
from wire.envelope import (
    ENVELOPE_OVERHEAD,
    ClientEnvelope,
    unwrap_untrusted,
    wrap,
)
from wire.messages import (
    MESSAGE_TYPES,
    Accept,
    Accepted,
    AcceptorOk,
    AcceptorState,
    ClientValue,
    LearnerDel,
    LearnerHi,
    Message,
    MessageType,
    Preempted,
    Prepare,
    Promise,
    Repeat,
    Trim,
)

__all__ = [
    "ENVELOPE_OVERHEAD",
    "MAX_DATAGRAM_SIZE",
    "MAX_VALUE_SIZE",
    "MESSAGE_TYPES",
    "Accept",
    "Accepted",
    "AcceptorOk",
    "AcceptorState",
    "ClientEnvelope",
    "ClientValue",
    "LearnerDel",
    "LearnerHi",
    "Message",
    "MessageType",
    "Preempted",
    "Prepare",
    "Promise",
    "Repeat",
    "Trim",
    "WireError",
    "decode_untrusted",
    "encode",
    "unwrap_untrusted",
    "wrap",
]
