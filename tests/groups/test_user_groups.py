"""03 groups in the UserGroups config: entries as libsession lays them out, and two devices of
one user adding different groups at once, synced through sealed config messages and merged."""

from __future__ import annotations

import pytest

from session.errors import InvalidInput
from session.groups.auth import SubaccountSigner, member_auth_data
from session.groups.config import ConfigMessage, merge, open_sealed, seal
from session.groups.crypto import GroupIdentity
from session.groups.user_groups import DOMAIN, UserGroup, get_groups, remove_group, set_group
from session.identity import Identity


def test_entries() -> None:
    me = Identity()
    admin_group, member_group = GroupIdentity.generate(), GroupIdentity.generate()
    auth = member_auth_data(member_group, me.session_id)
    data: dict = {}
    set_group(data, UserGroup(admin_group.group_id, admin_seed=admin_group.seed(), joined_at=5))
    set_group(
        data, UserGroup(member_group.group_id, auth_data=auth, name="Book club", invited=True)
    )
    a = data[b"g"][admin_group.ed25519_public]
    m = data[b"g"][member_group.ed25519_public]
    assert a == {b"K": admin_group.seed(), b"j": 5}  # no auth data next to a seed
    assert m == {b"K": b"", b"s": auth, b"n": b"Book club", b"i": 1}  # K always present
    groups = get_groups(data)
    admin_identity = groups[admin_group.group_id].admin_identity()
    assert admin_identity is not None and admin_identity.group_id == admin_group.group_id
    entry = groups[member_group.group_id]
    assert not entry.is_admin and entry.invited and entry.name == "Book club"
    SubaccountSigner(me, member_group.group_id, entry.auth_data)  # the grant works
    assert remove_group(data, member_group.group_id) and not remove_group(
        data, member_group.group_id
    )
    with pytest.raises(InvalidInput):
        set_group(data, UserGroup(member_group.group_id, admin_seed=admin_group.seed()))


def test_two_devices_add_groups_at_once() -> None:
    me = Identity()
    seed = me.seed() + bytes(16)  # the Ed25519 seed is the key of the user's own configs
    base = ConfigMessage(signer=None).increment()
    stored = seal(base.serialize(), seed, DOMAIN)
    g1, g2 = GroupIdentity.generate(), GroupIdentity.generate()
    # phone and laptop each load the stored config and join a different group
    pushes = []
    for g in (g1, g2):
        device = merge([open_sealed(stored, [seed], DOMAIN)], for_edit=True)
        set_group(device.data, UserGroup(g.group_id, admin_seed=g.seed()))
        pushes.append(seal(device.serialize(), seed, DOMAIN))
    # each device then sees both pushes: one merged config holds both groups (not the last one)
    views = [
        merge([open_sealed(p, [seed], DOMAIN) for p in order]) for order in (pushes, pushes[::-1])
    ]
    assert views[0].serialize() == views[1].serialize()
    assert set(get_groups(views[0].data)) == {g1.group_id, g2.group_id}
