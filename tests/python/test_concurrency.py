"""Concurrent clients against one member record (through the official Python SDK): no
acknowledged write is lost, a removed member is never brought back, nothing is refused."""

import threading
import uuid


def uid(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def run_all(targets):
    errors = []

    def guard(fn):
        def run():
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - every refusal fails the test
                errors.append(e)

        return run

    threads = [threading.Thread(target=guard(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_concurrent_member_updates_all_survive(client):
    member, other = uid("m"), uid("o")
    client.upsert_users([{"id": member}, {"id": other}])
    ch = client.channel("messaging", uid("patch"), {"members": [member, other]})
    ch.create(other)
    fields = [f"field_{i}" for i in range(30)]
    errors = run_all(
        [lambda f=f: ch.update_member_partial(member, to_set={f: True}) for f in fields]
    )
    assert not errors, errors
    got = {m["user_id"]: m for m in ch.query(members={"limit": 10})["members"]}[member]
    missing = [f for f in fields if got.get(f) is not True]
    assert not missing, f"acknowledged updates lost: {missing}"


def test_a_member_removed_while_reading_stays_removed(client):
    owner = uid("owner")
    client.upsert_users([{"id": owner}])
    for trial in range(8):
        reader = uid("reader")
        client.upsert_users([{"id": reader}])
        ch = client.channel("messaging", uid("race"), {"members": [owner, reader]})
        ch.create(owner)
        ch.send_message({"text": "hi"}, owner)

        def read_repeatedly():
            for _ in range(5):
                try:
                    ch.mark_read(reader)
                except Exception as e:  # noqa: BLE001
                    # Once removed, "not a member" is the right answer; anything else is not.
                    if "not a member" not in str(e):
                        raise

        errors = run_all([read_repeatedly, lambda: ch.remove_members([reader])])
        assert not errors, errors
        state = ch.query()
        listed = {m["user_id"] for m in state["members"]}
        assert reader not in listed, f"trial {trial}: the removed member is back"
        assert state["channel"]["member_count"] == len(listed), state["channel"]
