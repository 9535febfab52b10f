"""Who is in the cluster: acceptor, proposer and learner ids and their UDP addresses."""

from __future__ import annotations

from dataclasses import dataclass, field

from kpaxosd.paxos.ballots import MAX_PROPOSERS, MAX_U32

#: A UDP endpoint, as the socket module writes it: (host, port).
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Cluster:
    """The configuration of one Paxos cluster (the ``paxos.conf`` roles).

    Args:
        acceptors: acceptor id -> address. Every majority of these is a quorum.
        proposers: proposer id -> address; ids below :data:`MAX_PROPOSERS`.
        learners: learner id -> address (the ``learner`` lines). Where some are
            listed, only they and the replicas (an acceptor and a proposer on one
            address, which hosts a learner there) may act as learners towards the
            acceptors: register, ask for history, trim. None listed: any address
            that registers, as in the original.

    Raises:
        ValueError: no acceptor, or an id that does not fit the ballot scheme.
    """

    acceptors: dict[int, Address]
    proposers: dict[int, Address] = field(default_factory=dict)
    learners: dict[int, Address] = field(default_factory=dict)
    # Reverse map for messages that carry no acceptor id (ACCEPTOR_OK).
    _aid_by_address: dict[Address, int] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _learner_addresses: frozenset[Address] = field(
        init=False, repr=False, compare=False, default=frozenset()
    )

    def __post_init__(self) -> None:
        if not self.acceptors:
            raise ValueError("a cluster needs at least one acceptor")
        for aid in self.acceptors:
            if not 0 <= aid <= MAX_U32:
                raise ValueError(f"acceptor id {aid} does not fit a u32")
        for pid in self.proposers:
            if not 0 <= pid < MAX_PROPOSERS:
                raise ValueError(f"proposer id {pid} is not in 0..{MAX_PROPOSERS - 1}")
        # Copies: a caller mutating its dicts later must not change a frozen cluster.
        object.__setattr__(self, "acceptors", dict(self.acceptors))
        object.__setattr__(self, "proposers", dict(self.proposers))
        object.__setattr__(self, "learners", dict(self.learners))
        object.__setattr__(
            self, "_aid_by_address", {address: aid for aid, address in self.acceptors.items()}
        )
        replicas = {a for i, a in self.acceptors.items() if self.proposers.get(i) == a}
        object.__setattr__(
            self, "_learner_addresses", frozenset(self.learners.values()) | replicas
        )

    @property
    def quorum(self) -> int:
        """How many distinct acceptors make a majority."""
        return len(self.acceptors) // 2 + 1

    def acceptor_at(self, address: Address) -> int | None:
        """The id of the acceptor configured at ``address``, if any."""
        return self._aid_by_address.get(address)

    def lists_learner_at(self, address: Address) -> bool:
        """Whether the configuration lists a learner at ``address`` (or a replica,
        which hosts one there). Only meaningful when ``learners`` is not empty."""
        return address in self._learner_addresses
