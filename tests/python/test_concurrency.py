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


def test_a_reader_catching_up_by_id_gt_sees_every_acknowledged_message(client):
    import time

    author = uid("writer")
    client.upsert_users([{"id": author}])
    ch = client.channel("messaging", uid("catchup"), {"members": [author]})
    ch.create(author)
    last = ch.send_message({"text": "start"}, author)["message"]["id"]
    acked, lock, writing = set(), threading.Lock(), [16]
    seen = []

    def writer(n):
        try:
            for i in range(12):
                mid = ch.send_message({"text": f"w{n} m{i}"}, author)["message"]["id"]
                with lock:
                    acked.add(mid)
        finally:
            with lock:
                writing[0] -= 1

    def page_after(anchor):
        return ch.query(messages={"limit": 100, "id_gt": anchor})["messages"]

    def reader():
        anchor = last
        while True:
            with lock:
                done = writing[0] == 0
            page = page_after(anchor)
            for m in page:
                seen.append(m["id"])
                anchor = m["id"]
            if done and not page:
                return
            time.sleep(0.002)

    errors = run_all([lambda n=n: writer(n) for n in range(16)] + [reader])
    assert not errors, errors
    missed = acked - set(seen)
    assert not missed, f"a reader paging forward missed {len(missed)} of {len(acked)} acknowledged messages"
    assert len(seen) == len(set(seen)) == len(acked)


def test_a_hot_channel_takes_every_send_and_every_reaction(client):
    ctype = uid("hot")
    client.create_channel_type({"name": ctype, "count_messages": True})
    senders = [uid("s") for _ in range(64)]
    client.upsert_users([{"id": s} for s in senders])
    ch = client.channel(ctype, uid("hot"), {"members": senders})
    ch.create(senders[0])
    errors = run_all([lambda s=s: ch.send_message({"text": f"from {s}"}, s) for s in senders])
    assert not errors, f"{len(errors)} of 64 concurrent sends refused: {errors[:2]}"
    state = ch.query(messages={"limit": 100})
    assert len(state["messages"]) == 64
    assert state["channel"]["message_count"] == 64
    target = state["messages"][0]["id"]
    errors = run_all(
        [lambda s=s: ch.send_reaction(target, {"type": "like"}, s) for s in senders[:50]]
    )
    assert not errors, f"{len(errors)} of 50 concurrent reactions refused: {errors[:2]}"
    message = client.get_message(target)["message"]
    assert message["reaction_counts"] == {"like": 50}
    assert len(ch.get_reactions(target, limit=100)["reactions"]) == 50


def test_concurrent_member_adds_are_all_applied(client):
    owner = uid("owner")
    joiners = [uid("j") for _ in range(30)]
    client.upsert_users([{"id": u} for u in [owner, *joiners]])
    ch = client.channel("messaging", uid("adds"), {"members": [owner]})
    ch.create(owner)
    errors = run_all([lambda u=u: ch.add_members([u]) for u in joiners])
    assert not errors, f"{len(errors)} of 30 concurrent adds refused: {errors[:2]}"
    state = ch.query(members={"limit": 100})
    assert {m["user_id"] for m in state["members"]} == {owner, *joiners}
    assert state["channel"]["member_count"] == 31


def test_member_count_matches_the_members_after_a_crash_mid_call(restartable):
    import os
    import signal
    import time

    from stream_chat import StreamChat

    srv = restartable.start()
    client = StreamChat(api_key=srv.api_key, api_secret=srv.api_secret, base_url=srv.url)
    members = [uid("m") for _ in range(100)]
    client.upsert_users([{"id": u} for u in members[:50]])
    client.upsert_users([{"id": u} for u in members[50:]])
    owner = members[0]
    cids = []
    for trial in range(6):
        ch = client.channel("messaging", uid("crash"), {"members": [owner]})
        ch.create(owner)
        cids.append(ch.id)
        adding = threading.Thread(target=lambda: _ignore(lambda: ch.add_members(members[1:])))
        adding.start()
        time.sleep(0.004 * (trial + 1))
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(timeout=10)
        adding.join(timeout=10)
        srv.stop()
        srv = restartable.start()
        client = StreamChat(api_key=srv.api_key, api_secret=srv.api_secret, base_url=srv.url)
    for cid in cids:
        state = client.channel("messaging", cid).query(members={"limit": 300})
        assert state["channel"]["member_count"] == len(state["members"]), (cid, state["channel"]["member_count"], len(state["members"]))


def _ignore(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - the server is killed mid-call on purpose
        pass
