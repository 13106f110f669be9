# pragma version 0.4.3
"""
@title Session service-node staking
@notice An operator locks at least `min_stake` tokens for one service node, naming the node's
    Ed25519 and X25519 keys, its address and ports, and a signature by the node's Ed25519 key
    over (chain ID, this contract, operator). The contract cannot check Ed25519 (no EVM
    precompile): it stores the signature and the node software verifies it. Others may add to a
    registration's stake (shared stakes); only its operator may request the exit, and after
    `unlock_blocks` blocks every contributor withdraws what they put in. Every change is an
    event, so the registrations can be rebuilt from the chain's logs alone.
"""

from ethereum.ercs import IERC20

struct Registration:
    operator: address
    ed25519: bytes32
    x25519: bytes32
    ip: bytes16
    https_port: uint16
    zmq_port: uint16
    signature: Bytes[64]
    amount: uint256
    unlock_block: uint256

event Staked:
    id: indexed(uint256)
    operator: indexed(address)
    ed25519: indexed(bytes32)
    x25519: bytes32
    ip: bytes16
    https_port: uint16
    zmq_port: uint16
    signature: Bytes[64]
    amount: uint256

event StakeAdded:
    id: indexed(uint256)
    contributor: indexed(address)
    amount: uint256
    total: uint256

event ExitRequested:
    id: indexed(uint256)
    unlock_block: uint256

event Withdrawn:
    id: indexed(uint256)
    contributor: indexed(address)
    amount: uint256

token: public(immutable(IERC20))
min_stake: public(immutable(uint256))
unlock_blocks: public(immutable(uint256))

registration_count: public(uint256)
registrations: public(HashMap[uint256, Registration])
contributions: public(HashMap[uint256, HashMap[address, uint256]])


@deploy
def __init__(_token: IERC20, _min_stake: uint256, _unlock_blocks: uint256):
    assert _min_stake > 0, "min_stake must be positive"
    token = _token
    min_stake = _min_stake
    unlock_blocks = _unlock_blocks


@internal
def _pull(amount: uint256):
    assert extcall token.transferFrom(msg.sender, self, amount, default_return_value=True), "token transfer failed"


@external
def stake(
    ed25519: bytes32,
    x25519: bytes32,
    ip: bytes16,
    https_port: uint16,
    zmq_port: uint16,
    signature: Bytes[64],
    amount: uint256,
) -> uint256:
    """
    @notice Register a node with a first stake of `amount` (listed once the total reaches
        `min_stake`); returns the registration's ID (counting from 1).
    """
    assert amount > 0, "amount is zero"
    assert ed25519 != empty(bytes32) and x25519 != empty(bytes32), "empty key"
    assert https_port != 0 and zmq_port != 0, "port is zero"
    assert len(signature) == 64, "signature is not 64 bytes"
    rid: uint256 = self.registration_count + 1
    self.registration_count = rid
    self.registrations[rid] = Registration(
        operator=msg.sender,
        ed25519=ed25519,
        x25519=x25519,
        ip=ip,
        https_port=https_port,
        zmq_port=zmq_port,
        signature=signature,
        amount=amount,
        unlock_block=0,
    )
    self.contributions[rid][msg.sender] = amount
    self._pull(amount)
    log Staked(
        id=rid,
        operator=msg.sender,
        ed25519=ed25519,
        x25519=x25519,
        ip=ip,
        https_port=https_port,
        zmq_port=zmq_port,
        signature=signature,
        amount=amount,
    )
    return rid


@external
def add_stake(rid: uint256, amount: uint256):
    """
    @notice Add `amount` to registration `rid` (its operator or any contributor).
    """
    assert amount > 0, "amount is zero"
    assert self.registrations[rid].operator != empty(address), "no such registration"
    assert self.registrations[rid].unlock_block == 0, "registration is exiting"
    total: uint256 = self.registrations[rid].amount + amount
    self.registrations[rid].amount = total
    self.contributions[rid][msg.sender] += amount
    self._pull(amount)
    log StakeAdded(id=rid, contributor=msg.sender, amount=amount, total=total)


@external
def request_exit(rid: uint256):
    """
    @notice Start the exit of registration `rid` (its operator only): the node stays listed
        until block `unlock_block`, when the stake becomes withdrawable.
    """
    assert self.registrations[rid].operator != empty(address), "no such registration"
    assert self.registrations[rid].operator == msg.sender, "not the operator"
    assert self.registrations[rid].unlock_block == 0, "exit already requested"
    unlock: uint256 = block.number + unlock_blocks
    self.registrations[rid].unlock_block = unlock
    log ExitRequested(id=rid, unlock_block=unlock)


@external
def withdraw(rid: uint256):
    """
    @notice Return the caller's contribution to registration `rid` once it is unlocked.
    """
    unlock: uint256 = self.registrations[rid].unlock_block
    assert unlock != 0, "exit not requested"
    assert block.number >= unlock, "stake still locked"
    amount: uint256 = self.contributions[rid][msg.sender]
    assert amount > 0, "nothing to withdraw"
    self.contributions[rid][msg.sender] = 0
    self.registrations[rid].amount -= amount
    assert extcall token.transfer(msg.sender, amount, default_return_value=True), "token transfer failed"
    log Withdrawn(id=rid, contributor=msg.sender, amount=amount)
